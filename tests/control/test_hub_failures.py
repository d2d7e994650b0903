"""When a server cannot start: the reason in words, the failed page with Retry, the spawn limit."""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Awaitable, Callable
from typing import Any

from hub_kit import EVENT_SOURCE, Browser, xsrf_of

MakePodgate = Callable[..., Awaitable[Any]]

# No program of this name exists: kubesim treats it as an image that cannot be pulled.
# (The embedded cluster runs Jupyter for the spawner's own image, so a profile brings it.)
BAD_IMAGE = {
    "spawner": {
        "profiles": [
            {"slug": "echo", "display_name": "Echo", "default": True},
            {
                "slug": "broken",
                "display_name": "Broken",
                "image": "example.org/no-such-program-podgate:1",
            },
        ]
    }
}
# Ready only once GET <base>/never-answers succeeds, which the echo pod never gives.
NEVER_READY = {"spawner": {"readiness_path": "never-answers", "start_timeout": 1.5}}


async def _signed_in(pg: Any, user: str) -> Browser:
    browser = Browser(pg.public_url)
    response = await browser.login(user, next_url="/hub/home")
    assert response.status == 200, await response.text()
    return browser


def _words(page: str) -> str:
    return html.unescape(page)


async def test_a_bad_image_fails_with_the_reason_then_shows_retry(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(BAD_IMAGE)
    async with await _signed_in(pg, "ada") as browser:
        form = xsrf_of(await (await browser.get("/hub/spawn")).text())
        start = await browser.post(
            "/hub/spawn", {"_xsrf": form, "profile": "broken"}, allow_redirects=False
        )
        assert start.status == 303
        events = await browser.progress("ada", seconds=20)
        last = events[-1]
        assert last.get("failed") is True and not last.get("ready")
        assert "no-such-program-podgate" in last["message"]
        assert "cannot be pulled" in last["message"]
        percents = [e["progress"] for e in events]
        assert percents == sorted(percents), percents

        failed = await browser.get("/hub/spawn/ada", allow_redirects=False)
        page = _words(await failed.text())
        assert failed.status == 503
        assert "cannot be pulled" in page
        assert 'action="/hub/spawn/ada"' in page and ">Retry<" in page

        home = _words(await (await browser.get("/hub/home")).text())
        assert "state-failed" in home and "cannot be pulled" in home

        # The edge does not route a failed server: the user is sent to the failure.
        edge = await browser.get("/user/ada/", allow_redirects=False)
        assert edge.headers["Location"].startswith("/hub/spawn/ada")

        retry = await browser.post(
            "/hub/spawn/ada", {"_xsrf": xsrf_of(page), "next": "/user/ada/"}, allow_redirects=False
        )
        assert retry.status == 303
        assert retry.headers["Location"].startswith("/hub/spawn-pending/ada")
        # Retry starts again, with the default profile (which works).
        again = await browser.progress("ada", seconds=20)
        assert again[0]["progress"] == 0  # a new start, not the old failure replayed
        assert again[-1].get("ready") is True


async def test_a_server_that_never_answers_fails_with_timeout_words(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(NEVER_READY)
    async with await _signed_in(pg, "ada") as browser:
        await browser.start("ada")
        events = await browser.progress("ada", seconds=15)
        last = events[-1]
        assert last.get("failed") is True
        assert "did not become ready within 1.5 seconds" in last["message"]
        failed = await browser.get("/hub/spawn/ada", allow_redirects=False)
        assert failed.status == 503
        assert last["message"].removeprefix("Spawn failed: ") in _words(await failed.text())


async def test_the_spawn_limit_answers_429_with_retry_after(make_podgate: MakePodgate) -> None:
    pg = await make_podgate({"spawner": {"concurrent_spawn_limit": 1}})
    ada = await _signed_in(pg, "ada")
    bob = await _signed_in(pg, "bob")
    try:
        pg.cluster.kubelet.set_paused(True)  # ada's start stays under way
        first = await ada.start("ada")
        assert first.status == 303
        second = await bob.start("bob", next_url="/user/bob/lab")
        page = _words(await second.text())
        assert second.status == 429
        assert int(second.headers["Retry-After"]) >= 1
        assert "too many servers" in page.lower()
        assert "/hub/spawn/bob?next=%2Fuser%2Fbob%2Flab" in page

        token = await bob.xsrf("/hub/home")
        posted = await bob.post("/hub/spawn", {"_xsrf": token}, allow_redirects=False)
        assert posted.status == 429 and "Retry-After" in posted.headers
        assert pg.control.spawner.status("bob").state == "stopped"
        progress = await bob.get(await bob.progress_path("bob"), headers=EVENT_SOURCE)
        assert progress.status == 400
        assert progress.headers["Content-Type"].startswith("application/json")
        json.loads(await progress.text())
    finally:
        pg.cluster.kubelet.set_paused(False)
        await ada.close()
        await bob.close()


async def test_bob_starts_once_ada_is_running(make_podgate: MakePodgate) -> None:
    pg = await make_podgate({"spawner": {"concurrent_spawn_limit": 1}})
    async with await _signed_in(pg, "ada") as ada, await _signed_in(pg, "bob") as bob:
        await ada.start("ada")
        await asyncio.wait_for(ada.progress("ada"), 15)
        later = await bob.start("bob")
        assert later.status == 303
        events = await bob.progress("bob", seconds=15)
        assert events[-1].get("ready") is True


async def test_a_cluster_refusing_the_pod_is_a_503_page_in_words(
    make_podgate: MakePodgate, set_faults: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    pg = await make_podgate()
    async with await _signed_in(pg, "ada") as browser:
        await set_faults(pg.cluster, {"errors": {"create": {"code": 500, "count": 50}}})
        try:
            refused = await browser.start("ada")
            page = _words(await refused.text())
        finally:
            await set_faults(pg.cluster, {"reset": True})
        assert refused.status == 503
        assert "Traceback" not in page and "kubernetes_asyncio" not in page
        assert "could not create the server" in page
        assert 'action="/hub/spawn/ada"' in page and ">Retry<" in page
        # Once the cluster answers again, the same visit starts the server.
        again = await browser.get("/hub/spawn/ada", allow_redirects=False)
        assert again.status in (200, 503)  # the Start button, or the failure with Retry
        token = xsrf_of(await again.text())
        again = await browser.post("/hub/spawn/ada", {"_xsrf": token}, allow_redirects=False)
        assert again.headers["Location"].startswith("/hub/spawn-pending/ada")
        events = await browser.progress("ada", seconds=15)
        assert events[-1].get("ready") is True
