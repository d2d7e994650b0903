"""Starting, using and stopping a server through a real podgate, as a signed-in person does.

Each test runs against kubesim and against the real API server (both_servers).
The pods are kubesim's shared-process echo servers: they answer HTTP with
JSON describing what they received, echo WebSocket messages, and refuse
anything without their pod token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from hub_kit import EVENT_SOURCE, Browser
from kube_servers import PodgateCluster

MakePodgate = Callable[..., Awaitable[Any]]

pytestmark = pytest.mark.both_servers


async def _signed_in(pg: Any, user: str) -> Browser:
    browser = Browser(pg.public_url)
    response = await browser.login(user, next_url="/hub/home")
    assert response.status == 200, await response.text()
    return browser


async def _home_state(browser: Browser) -> str:
    page = await (await browser.get("/hub/home")).text()
    for state in ("stopped", "starting", "running", "stopping", "failed"):
        if f"state-{state}" in page:
            return state
    raise AssertionError(f"no state on the home page: {page}")


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)


async def _pod_token(pg: Any, user: str) -> str:
    """The secret token the spawner gave the user's pod (read back from the pod's env)."""
    pod = await pg.control.kube.get("pods", "podgate", f"jupyter-{user}")
    env = pod["spec"]["containers"][0].get("env", [])
    return next(e["value"] for e in env if e["name"] == "JUPYTER_TOKEN")


async def test_opening_the_server_goes_through_spawn_to_the_pod(
    make_podgate: MakePodgate, podgate_cluster: PodgateCluster
) -> None:
    pg = await make_podgate()
    async with await _signed_in(pg, "ada") as browser:
        assert await _home_state(browser) == "stopped"
        landing = await browser.get("/user/ada/tree/notes.ipynb")
        assert landing.status == 200
        assert landing.url.path == "/hub/spawn/ada"
        assert landing.url.query["next"] == "/user/ada/tree/notes.ipynb"
        podgate_cluster.set_paused(pg, True)  # the start stays under way: its page is shown
        try:
            started = await browser.press_start(landing)
            pending = await browser.get(started.headers["Location"])
        finally:
            podgate_cluster.set_paused(pg, False)
        assert pending.url.path == "/hub/spawn-pending/ada"
        assert pending.url.query["next"] == "/user/ada/tree/notes.ipynb"
        assert "spawn" in (await pending.text()).lower()

        events = await browser.progress("ada", seconds=15)
        assert events, "no progress events"
        assert "requested" in events[0]["message"].lower()
        percents = [e["progress"] for e in events]
        assert percents == sorted(percents), percents
        last = events[-1]
        assert last["ready"] is True and last["progress"] == 100
        assert last["url"] == "/user/ada/"
        assert not any(e.get("failed") for e in events)

        await _until(lambda: _routed(browser, "ada"))
        assert await _home_state(browser) == "running"
        answer = await browser.get("/user/ada/x?y=1")
        echoed = json.loads(await answer.text())
    token = await _pod_token(pg, "ada")
    assert echoed["path"] == "/user/ada/x" and echoed["query"] == "y=1"
    assert echoed["headers"]["Authorization"] == f"token {token}"
    assert "podgate-session" not in echoed["headers"].get("Cookie", "")


async def _routed(browser: Browser, user: str) -> bool:
    response = await browser.get(f"/user/{user}/probe", allow_redirects=False)
    return response.status == 200


async def test_a_websocket_through_the_server_echoes(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    async with await _signed_in(pg, "ada") as browser:
        await browser.start("ada")
        await browser.progress("ada", seconds=15)
        await _until(lambda: _routed(browser, "ada"))
        async with browser.session.ws_connect(
            browser.url("/user/ada/ws"), timeout=aiohttp.ClientWSTimeout(ws_close=5)
        ) as ws:
            await ws.send_str("hello pod")
            reply = await ws.receive(timeout=5)
    assert reply.type is aiohttp.WSMsgType.TEXT
    assert "hello pod" in reply.data


async def test_someone_elses_server_is_refused_everywhere(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    async with await _signed_in(pg, "bob") as bob:
        await bob.start("bob")
        await bob.progress("bob", seconds=15)
        await _until(lambda: _routed(bob, "bob"))
    async with await _signed_in(pg, "ada") as ada:
        edge = await ada.get("/user/bob/x", allow_redirects=False)
        assert edge.status == 403
        spawn = await ada.get("/hub/spawn/bob", allow_redirects=False)
        assert spawn.status == 403
        assert "another user" in (await spawn.text()).lower()
        progress = await ada.get(
            await ada.progress_path("bob"), headers=EVENT_SOURCE, allow_redirects=False
        )
        assert progress.status == 403
        pending = await ada.get("/hub/spawn-pending/bob", allow_redirects=False)
        assert pending.status == 403
        token = await ada.xsrf("/hub/home")
        stop = await ada.post("/hub/stop/bob", {"_xsrf": token}, allow_redirects=False)
        assert stop.status == 403
    # bob's server was left alone.
    assert pg.control.spawner.status("bob").state == "running"


async def test_an_admin_may_start_someone_elses_server(make_podgate: MakePodgate) -> None:
    pg = await make_podgate({"auth": {"admins": ["root"]}})
    async with await _signed_in(pg, "root") as admin:
        start = await admin.start("bob")
        assert start.status == 303
        assert start.headers["Location"].startswith("/hub/spawn-pending/bob")
        events = await admin.progress("bob", seconds=15)
        assert events[-1].get("ready") is True
    assert pg.control.spawner.status("bob").state == "running"
    # Starting bob's server did not hand root bob's session.
    async with Browser(pg.public_url) as stranger:
        edge = await stranger.get("/user/bob/", allow_redirects=False)
        assert edge.headers["Location"].startswith("/hub/login")


async def test_stop_removes_the_route_and_the_next_visit_spawns_again(
    make_podgate: MakePodgate,
    podgate_cluster: PodgateCluster,
) -> None:
    pg = await make_podgate()
    async with await _signed_in(pg, "ada") as browser:
        await browser.start("ada")
        await browser.progress("ada", seconds=15)
        await _until(lambda: _routed(browser, "ada"))
        token = await browser.xsrf("/hub/home")
        podgate_cluster.set_paused(pg, True)  # the pod is deleting, not gone yet
        try:
            stopped = await browser.post("/hub/stop", {"_xsrf": token}, allow_redirects=False)
            assert stopped.status == 303
            assert stopped.headers["Location"] == "/hub/home"
            await _until(lambda: _state_is(browser, "stopping"), seconds=5)
        finally:
            podgate_cluster.set_paused(pg, False)

        async def route_gone() -> bool:
            response = await browser.get("/user/ada/", allow_redirects=False)
            return response.status == 302 and response.headers["Location"].startswith(
                "/hub/spawn/ada"
            )

        await _until(route_gone, seconds=10)
        await _until(lambda: _state_is(browser, "stopped"), seconds=10)


async def _state_is(browser: Browser, state: str) -> bool:
    return await _home_state(browser) == state


async def test_home_shows_starting_while_the_pod_is_not_ready(
    make_podgate: MakePodgate, podgate_cluster: PodgateCluster
) -> None:
    pg = await make_podgate()
    async with await _signed_in(pg, "ada") as browser:
        podgate_cluster.set_paused(pg, True)
        try:
            start = await browser.start("ada")
            assert start.status == 303
            assert await _home_state(browser) == "starting"
            pending = await browser.get("/hub/spawn-pending/ada")
            assert pending.status == 200
        finally:
            podgate_cluster.set_paused(pg, False)
        await browser.progress("ada", seconds=15)
        await _until(lambda: _state_is(browser, "running"))


async def test_progress_of_a_server_that_is_not_starting_is_a_400(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate()
    async with await _signed_in(pg, "ada") as browser:
        response = await browser.get(await browser.progress_path("ada"), headers=EVENT_SOURCE)
        assert response.status == 400
        assert "no server" in json.loads(await response.text())["message"]
    async with Browser(pg.public_url) as stranger:
        response = await stranger.get("/hub/api/users/ada/server/progress")
        assert response.status == 403


async def test_leaving_the_progress_page_mid_spawn_is_quiet(
    make_podgate: MakePodgate, podgate_cluster: PodgateCluster, caplog: pytest.LogCaptureFixture
) -> None:
    pg = await make_podgate()
    async with await _signed_in(pg, "ada") as browser:
        podgate_cluster.set_paused(pg, True)
        try:
            await browser.start("ada")
            url = browser.url(await browser.progress_path("ada"))
            async with browser.session.get(url, headers=EVENT_SOURCE) as stream:
                assert stream.status == 200
                first = await asyncio.wait_for(stream.content.readline(), 5)
                assert first.startswith(b"data: ")
            # The browser went away; the spawn goes on and nothing is logged as an error.
            await asyncio.sleep(0.2)
        finally:
            podgate_cluster.set_paused(pg, False)
        events = await browser.progress("ada", seconds=15)
        assert events[-1].get("ready") is True
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def test_a_quiet_start_keeps_its_stream_across_keep_alives(
    make_podgate: MakePodgate, podgate_cluster: PodgateCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start with nothing to say for a while (a long image pull) keeps its stream open."""
    from control.web import progress_stream

    monkeypatch.setattr(progress_stream, "KEEPALIVE_SECONDS", 0.2)
    pg = await make_podgate()
    async with await _signed_in(pg, "ada") as browser:
        podgate_cluster.set_paused(pg, True)
        try:
            await browser.start("ada")
            url = browser.url(await browser.progress_path("ada"))
            async with browser.session.get(url, headers=EVENT_SOURCE) as stream:
                lines = []
                while sum(1 for line in lines if line.startswith(b":")) < 3:
                    lines.append(await asyncio.wait_for(stream.content.readline(), 5))
                podgate_cluster.set_paused(pg, False)
                async with asyncio.timeout(15):
                    async for line in stream.content:
                        lines.append(line)
        finally:
            podgate_cluster.set_paused(pg, False)
    events = [json.loads(line[6:]) for line in lines if line.startswith(b"data: ")]
    assert events[-1].get("ready") is True, events


async def test_coming_back_while_the_old_pod_stops_starts_anew_without_holding_the_page(
    make_podgate: MakePodgate,
    podgate_cluster: PodgateCluster,
) -> None:
    """Stop, then open the server again at once: the spawn page answers promptly, progress
    says it waits for the old pod, and a new pod runs once the old one is gone."""
    pg = await make_podgate()
    async with await _signed_in(pg, "ada") as browser:
        await browser.start("ada")
        first = await browser.progress("ada")
        assert first[-1].get("ready") is True
        old = await pg.control.kube.get("pods", "podgate", "jupyter-ada")
        podgate_cluster.set_paused(pg, True)  # the old pod stays terminating
        try:
            token = await browser.xsrf("/hub/home")
            stopped = await browser.post("/hub/stop", {"_xsrf": token}, allow_redirects=False)
            assert stopped.status == 303
            await _until(lambda: _state_is(browser, "stopping"))
            began = time.monotonic()
            spawn = await browser.start("ada")
            assert time.monotonic() - began < 2.0, "the spawn page waited for the old pod"
            assert spawn.status == 303
            assert spawn.headers["Location"].startswith("/hub/spawn-pending/ada")
            url = browser.url(await browser.progress_path("ada"))
            async with browser.session.get(url, headers=EVENT_SOURCE) as stream:
                messages = []
                async with asyncio.timeout(10):
                    async for line in stream.content:
                        if line.startswith(b"data: "):
                            event = json.loads(line[6:])
                            messages.append(event["message"])
                            if "previous server" in event["message"]:
                                podgate_cluster.set_paused(pg, False)
                            if event.get("ready") or event.get("failed"):
                                break
        finally:
            podgate_cluster.set_paused(pg, False)
        assert any("previous server" in m for m in messages), messages
        assert "ready" in messages[-1].lower(), messages
        new = await pg.control.kube.get("pods", "podgate", "jupyter-ada")
        assert new["metadata"]["uid"] != old["metadata"]["uid"]


async def test_a_get_never_starts_a_server_and_start_is_a_post_with_the_form_token(
    make_podgate: MakePodgate,
) -> None:
    # Issue 11, finding 8: GET /hub/spawn started servers, so any site could
    # start them with a link or an image.
    pg = await make_podgate({"auth": {"admins": ["root"]}})
    spawner = pg.control.spawner
    async with await _signed_in(pg, "ada") as ada, await _signed_in(pg, "root") as admin:
        for browser, path, user in (
            (ada, "/hub/spawn", "ada"),
            (ada, "/hub/spawn/ada?next=/user/ada/lab", "ada"),
            (admin, "/hub/spawn/bob", "bob"),
        ):
            page = await browser.get(path, allow_redirects=False)
            assert page.status == 200, path
            assert '<form method="post"' in await page.text()
            assert spawner.status(user).state == "stopped", path
        # A POST without the form token (another site's form) starts nothing either.
        forged = await ada.post("/hub/spawn", {"next": ""}, allow_redirects=False)
        assert forged.status == 403
        assert spawner.status("ada").state == "stopped"
        # Pressing Start does.
        page = await ada.get("/hub/spawn/ada?next=/user/ada/lab")
        started = await ada.press_start(page)
        assert started.status == 303
        assert started.headers["Location"].startswith("/hub/spawn-pending/ada")
        events = await ada.progress("ada", seconds=15)
        assert events[-1].get("ready") is True, events
