"""The admin panel (/hub/admin) through a real podgate: who may see it, what it shows, actions.

Servers are kubesim's echo pods; people are Browsers with their own cookie
jars. An admin sees every user's server with its pod, node, image, age,
activity and resources, and starts and stops them through a confirmation
page whose POST carries the CSRF token.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hub_kit import Browser, xsrf_of
from yarl import URL

MakePodgate = Callable[..., Awaitable[Any]]
ADMINS = {"auth": {"admins": ["root"]}}
RESOURCES = {"spawner": {"resources": {"cpu_request": "250m", "memory_request": "128Mi"}}}


async def _signed_in(pg: Any, user: str) -> Browser:
    browser = Browser(pg.public_url)
    response = await browser.login(user, next_url="/hub/home")
    assert response.status == 200, await response.text()
    return browser


async def _started(pg: Any, user: str) -> Browser:
    browser = Browser(pg.public_url)
    events = await browser.start_server(user)
    assert events[-1].get("ready"), events
    return browser


async def _started_unvisited(pg: Any, user: str) -> Browser:
    """Started and ready, its server never opened: no traffic of it through this edge."""
    browser = Browser(pg.public_url)
    pg.cluster.kubelet.set_paused(True)  # the sign-in lands on the progress page
    try:
        assert (await browser.login(user)).status == 200
    finally:
        pg.cluster.kubelet.set_paused(False)
    events = await browser.progress(user)
    assert events[-1].get("ready"), events
    return browser


async def _data(browser: Browser, query: str = "") -> dict[str, Any]:
    response = await browser.get(f"/hub/admin/data{query}")
    assert response.status == 200, await response.text()
    return dict(await response.json())


def _row(data: dict[str, Any], user: str) -> dict[str, Any]:
    return next(row for row in data["rows"] if row["user"] == user)


async def _until_state(browser: Browser, user: str, state: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while _row(await _data(browser, f"?q={user}"), user)["state"] != state:
        assert time.monotonic() < deadline, f"{user} not {state} in {seconds} s"
        await asyncio.sleep(0.1)


async def test_only_admins_see_the_panel(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(ADMINS)
    async with Browser(pg.public_url) as stranger:
        response = await stranger.get("/hub/admin?q=x", allow_redirects=False)
        assert response.status == 302
        location = URL(response.headers["Location"])
        assert location.path == "/hub/login" and location.query["next"] == "/hub/admin?q=x"
        assert (await stranger.get("/hub/admin/data")).status == 403
    async with await _signed_in(pg, "ada") as ada:
        for path in ("/hub/admin", "/hub/admin/data", "/hub/admin/confirm?action=stop&user=x"):
            response = await ada.get(path)
            assert response.status == 403, path
            assert "for admins only" in await response.text()
        token = xsrf_of(await (await ada.get("/hub/home")).text())
        refused = await ada.post("/hub/admin/stop", {"user": "bob", "_xsrf": token})
        assert refused.status == 403
    async with await _signed_in(pg, "root") as root:
        response = await root.get("/hub/admin")
        assert response.status == 200
        page = await response.text()
        assert "<h1>Admin</h1>" in page
        assert 'id="admin-rows"' in page and "/hub/static/admin.js?v=" in page
        assert "<script>" not in page  # the CSP allows only files of ours
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert 'data-admin-data="/hub/admin/data"' in page
        # A script's fetch of the data must send the page's token (a pod page's cannot).
        as_script = {"Sec-Fetch-Dest": "empty"}
        assert (await root.get("/hub/admin/data", headers=as_script)).status == 403
        token = xsrf_of(page)
        assert f'data-xsrf="{token}"' in page
        with_token = await root.get("/hub/admin/data", headers={**as_script, "X-XSRFToken": token})
        assert with_token.status == 200
        assert "admin-rows" in (await with_token.json())["html"]
        # The page works without JavaScript too: it refreshes itself.
        assert '<noscript><meta http-equiv="refresh"' in page


async def test_a_running_server_shows_pod_node_image_resources_and_activity(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate({**ADMINS, **RESOURCES})
    async with await _started(pg, "bob") as bob, await _signed_in(pg, "root") as root:
        assert (await bob.get("/user/bob/hello")).status == 200  # traffic through the edge
        data = await _data(root)
        row = _row(data, "bob")
        assert row["state"] == "running"
        assert row["pod"] == "jupyter-bob"
        assert row["node"]  # spec.nodeName, as kubesim's scheduler set it
        assert row["image"] == "kubesim/echo"
        assert row["cpu_request"] == 0.25 and row["memory_request"] == 128 * 2**20
        assert row["started"] is not None and time.time() - row["started"] < 60
        assert row["activity_source"] == "edge traffic"
        assert time.time() - row["last_activity"] < 30
        assert data["running"] == 1 and data["total_users"] >= 2  # bob and root
        assert data["usage_known"] is True  # kubesim serves metrics.k8s.io
        assert _row(data, "root")["state"] == "stopped"

        page = await (await root.get("/hub/admin")).text()
        bob_row = re.search(r'<tr data-user="bob".*?</tr>', page)
        assert bob_row is not None
        cells = bob_row.group(0).replace("<wbr>", "")  # break hints, invisible
        assert "Running" in cells and "jupyter-bob" in cells and row["node"] in cells
        assert "kubesim/echo" in cells and "250m" in cells and "128 MiB" in cells
        assert "edge traffic" in cells and "Stop…" in cells
        assert 'href="/user/bob/"' not in cells  # admin_access is off: it would be a 403


async def test_stop_needs_the_confirmation_form_and_its_csrf_token(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(ADMINS)
    async with await _started(pg, "bob"), await _signed_in(pg, "root") as root:
        confirm = await root.get("/hub/admin/confirm?action=stop&user=bob&back=%3Fq%3Db")
        assert confirm.status == 200
        page = await confirm.text()
        assert "bob&#x27;s server is running. Stop it?" in page
        assert 'action="/hub/admin/stop"' in page and 'href="/hub/admin?q=b"' in page

        refused = await root.post("/hub/admin/stop", {"user": "bob"})
        assert refused.status == 403
        forged = await root.post("/hub/admin/stop", {"user": "bob", "_xsrf": "forged"})
        assert forged.status == 403
        assert _row(await _data(root), "bob")["state"] == "running"

        form = {"user": "bob", "back": "?q=b", "_xsrf": xsrf_of(page)}
        done = await root.post("/hub/admin/stop", form, allow_redirects=False)
        assert done.status == 303
        assert done.headers["Location"] == "/hub/admin?q=b&done=stop&user=bob"
        landed = await (await root.get(done.headers["Location"])).text()
        assert "bob&#x27;s server is stopping." in landed
        await _until_state(root, "bob", "stopped")


async def test_admin_starts_a_users_server(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(ADMINS)
    async with await _signed_in(pg, "root") as root:
        page = await (await root.get("/hub/admin/confirm?action=start&user=Carol")).text()
        assert "carol&#x27;s server is stopped. Start it?" in page
        form = {"user": "carol", "_xsrf": xsrf_of(page)}
        done = await root.post("/hub/admin/start", form, allow_redirects=False)
        assert done.status == 303
        await _until_state(root, "carol", "running")
        bad = await root.get("/hub/admin/confirm?action=start&user=no/such")
        assert bad.status == 400
        assert (await root.get("/hub/admin/confirm?action=explode&user=x")).status == 400


async def test_admin_signs_a_user_out_everywhere(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(ADMINS)
    async with await _started(pg, "bob") as bob, await _signed_in(pg, "root") as root:
        assert (await bob.get("/user/bob/hello")).status == 200
        listing = await (await root.get("/hub/admin?q=bob")).text()
        assert "/hub/admin/confirm?action=sign-out&amp;user=bob" in listing
        confirm = await root.get("/hub/admin/confirm?action=sign-out&user=bob&back=%3Fq%3Db")
        page = await confirm.text()
        assert confirm.status == 200 and 'action="/hub/admin/sign-out"' in page
        forged = await root.post("/hub/admin/sign-out", {"user": "bob", "_xsrf": "forged"})
        assert forged.status == 403
        assert (await bob.get("/user/bob/hello", allow_redirects=False)).status == 200

        form = {"user": "bob", "back": "?q=b", "_xsrf": xsrf_of(page)}
        done = await root.post("/hub/admin/sign-out", form, allow_redirects=False)
        assert done.status == 303
        assert done.headers["Location"] == "/hub/admin?q=b&done=sign-out&user=bob"
        landed = await (await root.get(done.headers["Location"])).text()
        assert "bob is signed out everywhere." in landed
        # bob's browser is sent to the login page; his server keeps running.
        refused = await bob.get("/user/bob/hello", allow_redirects=False)
        assert refused.status == 302 and refused.headers["Location"].startswith("/hub/login")
        assert _row(await _data(root), "bob")["state"] == "running"
        # The admin's own session is untouched.
        assert (await root.get("/hub/admin")).status == 200


async def test_stop_idle_stops_only_the_idle_servers(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(ADMINS)
    async with (
        await _started_unvisited(pg, "idle"),
        await _started(pg, "busy") as busy,
        await _signed_in(pg, "root") as root,
    ):
        assert (await busy.get("/user/busy/")).status == 200
        # Another replica recorded idle's last traffic two hours ago; busy's is now.
        two_hours_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
        stamp = two_hours_ago.isoformat(timespec="seconds").replace("+00:00", "Z")
        patch = {"metadata": {"annotations": {"podgate.io/last-activity": stamp}}}
        await pg.control.kube.patch("pods", "podgate", "jupyter-idle", patch)
        deadline = time.monotonic() + 10
        while _row(await _data(root, "?q=idle"), "idle")["last_activity"] is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)

        page = await (await root.get("/hub/admin/confirm?action=stop-idle&idle_minutes=60")).text()
        assert "1 running server has seen no traffic for 1 h or more" in page
        assert "<li>idle</li>" in page and "<li>busy</li>" not in page
        odd = await root.get("/hub/admin/confirm?action=stop-idle&idle_minutes=1")
        assert odd.status == 400
        form = {"idle_minutes": "60", "_xsrf": xsrf_of(page)}
        done = await root.post("/hub/admin/stop-idle", form)
        assert "Asked 1 idle server to stop." in await done.text()
        await _until_state(root, "idle", "stopped")
        assert _row(await _data(root, "?q=busy"), "busy")["state"] == "running"


async def test_storage_shows_each_users_claim(make_podgate: MakePodgate) -> None:
    pg = await make_podgate({**ADMINS, "spawner": {"storage": {"size": "1Gi"}}})
    async with await _started(pg, "dora"), await _signed_in(pg, "root") as root:
        data = await _data(root)
        assert _row(data, "dora")["pvc"] == "claim-dora"  # mounted by the running pod
        assert _row(data, "root")["pvc"] == "claim-root"  # the claim a start would use


async def test_a_failed_start_shows_its_reason_escaped(make_podgate: MakePodgate) -> None:
    hostile = 'kubesim/nope"><script>alert(1)</script>'
    profiles = [{"slug": "bad", "display_name": "Bad", "image": hostile, "default": True}]
    pg = await make_podgate({**ADMINS, "spawner": {"profiles": profiles, "start_timeout": 5}})
    async with await _signed_in(pg, "root") as root:
        page = await (await root.get("/hub/admin/confirm?action=start&user=mallory")).text()
        await root.post("/hub/admin/start", {"user": "mallory", "_xsrf": xsrf_of(page)})
        await _until_state(root, "mallory", "failed")
        listing = await (await root.get("/hub/admin?q=mallory")).text()
        assert "<script>alert(1)" not in listing
        assert "admin-failure" in listing
        failure = _row(await _data(root, "?q=mallory"), "mallory")["failure"]
        assert hostile in failure  # the message names the image, as it was typed
        assert "kubesim/nope&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in listing


@pytest.mark.parametrize("admin_access", [False, True])
async def test_a_users_name_links_only_where_the_admin_may_go(
    make_podgate: MakePodgate, admin_access: bool
) -> None:
    pg = await make_podgate({**ADMINS, "edge": {"admin_access": admin_access}})
    async with await _started(pg, "bob"), await _signed_in(pg, "root") as root:
        page = await (await root.get("/hub/admin")).text()
        linked = '<a href="/user/bob/">bob</a>' in page
        assert linked is admin_access
        # Whatever the name links to answers the admin (no 403).
        for href in re.findall(r'<th scope="row" class="admin-user"><a href="([^"]+)"', page):
            assert (await root.get(href)).status == 200, href


async def test_an_admins_home_links_to_the_panel_and_a_users_does_not(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(ADMINS)
    for user, shown in (("root", True), ("ada", False)):
        async with await _signed_in(pg, user) as browser:
            page = await (await browser.get("/hub/home")).text()
            assert ('href="/hub/admin"' in page) is shown, user
