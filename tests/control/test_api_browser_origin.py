"""Cookie calls to /hub/api need the XSRF token; a pod's page on the same origin gets neither
a hub page (with its token) nor any API action with the visitor's cookie."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hub_kit import Browser

MakePodgate = Callable[..., Awaitable[Any]]

ADMINS = {"auth": {"admins": ["root"]}}

# What a browser sends for fetch()/XHR made by a script of a page under /user/ada/.
POD_FETCH = {
    "Sec-Fetch-Site": "same-origin",
    "Sec-Fetch-Mode": "cors",
    "Sec-Fetch-Dest": "empty",
}


async def _signed_in(pg: Any, user: str) -> Browser:
    browser = Browser(pg.public_url)
    response = await browser.login(user, next_url="/hub/home")
    assert response.status == 200, await response.text()
    return browser


async def _until(check: Callable[[], bool], seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_cookie_calls_act_only_with_the_pages_xsrf_token(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    async with await _signed_in(pg, "ada") as ada:
        refused = await ada.post("/hub/api/users/ada/server", {})
        assert refused.status == 403 and "XSRF" in (await refused.json())["message"]
        wrong = await ada.post("/hub/api/users/ada/server", {}, headers={"X-XSRFToken": "1.forged"})
        assert wrong.status == 403
        assert pg.control.spawner.status("ada").state == "stopped"
        token = await ada.xsrf("/hub/home")
        started = await ada.post("/hub/api/users/ada/server", {}, headers={"X-XSRFToken": token})
        assert started.status in (201, 202)
        await _until(lambda: pg.control.spawner.status("ada").state == "running")
        me = await ada.get("/hub/api/user", headers={"X-XSRFToken": token})
        body = await me.json()
        assert me.status == 200 and body["name"] == "ada" and body["kind"] == "user"
        assert "servers" in body["scopes"] and "admin:users" not in body["scopes"]
        listed = await ada.get("/hub/api/users", headers={"X-XSRFToken": token})
        assert listed.status == 200 and [u["name"] for u in await listed.json()] == ["ada"]
        assert (await ada.get("/hub/api/users")).status == 403
        # The token in the query counts only for the progress stream an EventSource opens.
        for accept in ("text/event-stream", "application/json"):
            in_query = await ada.get(f"/hub/api/users?_xsrf={token}", headers={"Accept": accept})
            assert in_query.status == 403, accept
        async with ada.session.delete(ada.url(f"/hub/api/users/ada/server?_xsrf={token}")) as stop:
            assert stop.status == 403
        assert pg.control.spawner.status("ada").state == "running"
        progress = f"/hub/api/users/ada/server/progress?_xsrf={token}"
        assert (await ada.get(progress, headers={"Accept": "application/json"})).status == 403
        stream = await ada.get(progress, headers={"Accept": "text/event-stream"})
        assert stream.status == 200 and b'"ready": true' in await stream.read()


async def test_a_users_token_is_not_good_for_another_user(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    async with await _signed_in(pg, "ada") as ada, await _signed_in(pg, "bob") as bob:
        ada_token = await ada.xsrf("/hub/home")
        # bob's browser with ada's token (a token copied between sessions) acts for nobody.
        refused = await bob.post(
            "/hub/api/users/bob/server", {}, headers={"X-XSRFToken": ada_token}
        )
        assert refused.status == 403
        # ada with her own token may not touch bob's server.
        token = ada_token
        other = await ada.post("/hub/api/users/bob/server", {}, headers={"X-XSRFToken": token})
        assert other.status == 403
    assert pg.control.spawner.status("bob").state == "stopped"


async def test_an_admin_cookie_with_the_token_acts_for_others(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(ADMINS)
    async with await _signed_in(pg, "root") as root:
        token = await root.xsrf("/hub/home")
        made = await root.post("/hub/api/users/bob", {}, headers={"X-XSRFToken": token})
        assert made.status == 201
        started = await root.post("/hub/api/users/bob/server", {}, headers={"X-XSRFToken": token})
        assert started.status in (201, 202)
    await _until(lambda: pg.control.spawner.status("bob").state == "running")


async def test_a_pod_pages_fetch_gets_no_page_and_no_action(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(ADMINS)
    async with await _signed_in(pg, "root") as root:
        await root.get("/hub/home")  # the visitor has both cookies: session and XSRF binding
        fetch = {**POD_FETCH, "Referer": pg.public_url + "/user/root/lab"}
        for page in ("/hub/home", "/hub/spawn/bob", "/hub/spawn", "/hub/logout"):
            answer = await root.get(page, headers=fetch, allow_redirects=False)
            text = await answer.text()
            assert answer.status == 403, page
            assert "_xsrf" not in text and "xsrf" not in answer.headers.get("Set-Cookie", "")
        framed = await root.get("/hub/home", headers={**fetch, "Sec-Fetch-Dest": "iframe"})
        assert framed.status == 403
        # The admin panel's live data carries the admin's token: not for a pod's script.
        data = await root.get("/hub/admin/data", headers=fetch)
        assert data.status == 403 and "xsrf" not in (await data.text()).lower()
        # Without the token the cookie does nothing on the API, whatever the method.
        for method, path in (
            ("POST", "/hub/api/users/bob/server"),
            ("POST", "/hub/api/users/mallory"),
            ("DELETE", "/hub/api/users/root/server"),
            ("GET", "/hub/api/users"),
            ("GET", "/hub/api/user"),
        ):
            response = await root.session.request(method, root.url(path), headers=fetch)
            assert response.status == 403, (method, path)
            response.release()
        # The browser's own navigation still gets the page, severed from any opener.
        page = await root.get("/hub/home", headers={**fetch, "Sec-Fetch-Dest": "document"})
        assert page.status == 200 and "_xsrf" in await page.text()
        assert page.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert pg.control.spawner.status("bob").state == "stopped"
    assert "mallory" not in pg.control.hub.users


async def test_the_pages_own_assets_and_stream_still_load(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    async with await _signed_in(pg, "ada") as ada:
        style = await ada.get(
            "/hub/static/podgate.css", headers={**POD_FETCH, "Sec-Fetch-Dest": "style"}
        )
        assert style.status == 200
        token = await ada.xsrf("/hub/home")
        await ada.post("/hub/api/users/ada/server", {}, headers={"X-XSRFToken": token})
        # EventSource: no custom header, the token in the query.
        stream = await ada.get(
            f"/hub/api/users/ada/server/progress?_xsrf={token}",
            headers={**POD_FETCH, "Accept": "text/event-stream"},
        )
        assert stream.status == 200 and b'"ready": true' in await stream.read()


async def test_a_hub_script_holding_the_token_may_fetch_hub_pages(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(ADMINS)
    async with await _signed_in(pg, "root") as root:
        token = await root.xsrf("/hub/home")
        held = {**POD_FETCH, "X-XSRFToken": token}
        data = await root.get("/hub/admin/data", headers=held)
        assert data.status == 200
        home = await root.get("/hub/home", headers=held)
        assert home.status == 200
        forged = await root.get("/hub/home", headers={**POD_FETCH, "X-XSRFToken": "1.x"})
        assert forged.status == 403
