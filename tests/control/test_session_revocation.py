"""Sessions end: sign-out, a reload that removes the user, and an admin's "sign out everywhere".

A podgate with its control plane and the embedded kubesim, echo pods, and
browsers holding real cookies. Each test keeps a copy of the cookie (as a
second browser, or someone who stole it, would) and shows that after the
event it reaches neither the hub nor the user's pod, even though it was
verified (and cached) a moment before.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import aiohttp
import pytest
from hub_kit import PASSWORD, Browser, podgate_config, start_podgate

from control.auth import hash_password
from control.names import USER_ANNOTATION, record_name
from control.user_records import LAST_LOGIN, NOT_BEFORE, RECORD_SELECTOR
from podgate.assembly import Podgate
from podgate.reload import apply_config

COOKIE = "podgate-session"
ENDED = (1001, "session ended")  # the close frame a signed-out user's WebSocket gets
TOKEN = "test-revocation-token-0123456789"
SETTINGS = {
    "auth": {"admins": ["root"]},
    "api_tokens": [{"name": "ops", "token": TOKEN, "scopes": ["admin"]}],
}


@pytest.fixture
async def podgate() -> AsyncIterator[Podgate]:
    running = await start_podgate(SETTINGS)
    try:
        yield running
    finally:
        await running.stop()


def cookie_of(browser: Browser) -> str:
    for morsel in browser.session.cookie_jar:
        if morsel.key == COOKIE:
            return morsel.value
    raise AssertionError("the browser holds no session cookie")


async def with_cookie(podgate: Podgate, path: str, cookie: str) -> aiohttp.ClientResponse:
    """GET `path` carrying only `cookie`, as a copy of it elsewhere would (no redirects)."""
    async with (
        aiohttp.ClientSession(cookies={COOKIE: cookie}) as client,
        client.get(podgate.public_url + path, allow_redirects=False) as response,
    ):
        await response.read()
        return response


async def reaches(podgate: Podgate, user: str, cookie: str) -> tuple[bool, bool]:
    """(the hub knows the cookie's user, the cookie reaches the user's pod)."""
    home = await with_cookie(podgate, "/hub/home", cookie)
    pod = await with_cookie(podgate, f"/user/{user}/hello", cookie)
    if pod.status == 200:
        assert (await pod.json())["pod"] == f"jupyter-{user}"
    return home.status == 200, pod.status == 200


async def api(podgate: Podgate, method: str, path: str) -> aiohttp.ClientResponse:
    headers = {"Authorization": f"token {TOKEN}"}
    async with (
        aiohttp.ClientSession(headers=headers) as client,
        client.request(method, podgate.ops_url + "/hub/api" + path) as response,
    ):
        await response.read()
        return response


async def test_after_logout_the_old_cookie_reaches_neither_hub_nor_pod(
    podgate: Podgate,
) -> None:
    async with Browser(podgate.public_url) as ada:
        events = await ada.start_server("ada")
        assert events[-1].get("ready"), events
        stolen = cookie_of(ada)
        assert await reaches(podgate, "ada", stolen) == (True, True)  # verified and cached

        response = await ada.post("/hub/logout", {"_xsrf": await ada.xsrf("/hub/home")})
        assert response.status == 200 and "podgate-session" not in {
            m.key for m in ada.session.cookie_jar
        }
        assert await reaches(podgate, "ada", stolen) == (False, False)
        refused = await with_cookie(podgate, "/user/ada/hello", stolen)
        assert refused.headers["Location"].startswith("/hub/login")
        stats = podgate.stats.cookie_rejections
        assert stats["revoked"] >= 1, stats

        # Signing in again (within the same second, too) gives a cookie that works.
        assert (await ada.login("ada", next_url="/hub/home")).status == 200
        assert await reaches(podgate, "ada", cookie_of(ada)) == (True, True)
        assert await reaches(podgate, "ada", stolen) == (False, False)


async def test_logout_ends_only_that_users_sessions(podgate: Podgate) -> None:
    async with Browser(podgate.public_url) as ada, Browser(podgate.public_url) as bob:
        await ada.start_server("ada")
        await bob.start_server("bob")
        bobs = cookie_of(bob)
        await ada.post("/hub/logout", {"_xsrf": await ada.xsrf("/hub/home")})
        assert await reaches(podgate, "bob", bobs) == (True, True)


async def test_a_reload_removing_the_user_from_allowed_users_ends_their_sessions(
    podgate: Podgate,
) -> None:
    async with Browser(podgate.public_url) as ada:
        await ada.start_server("ada")
        cookie = cookie_of(ada)
        assert await reaches(podgate, "ada", cookie) == (True, True)
        apply_config(podgate, podgate_config({**SETTINGS, "auth": {
            "admins": ["root"], "allowed_users": ["bob"],
        }}))  # fmt: skip
        assert await reaches(podgate, "ada", cookie) == (False, False)
        # Allowed again: the same cookie works again (it was never signed out).
        apply_config(podgate, podgate_config(SETTINGS))
        assert await reaches(podgate, "ada", cookie) == (True, True)


async def test_a_reload_removing_the_user_from_auth_users_ends_their_sessions() -> None:
    hashed = hash_password(PASSWORD)
    both = {"kind": "password", "users": {"ada": hashed, "bob": hashed}, "admins": []}
    podgate = await start_podgate({"auth": both})
    try:
        async with Browser(podgate.public_url) as ada, Browser(podgate.public_url) as bob:
            await ada.start_server("ada")
            await bob.start_server("bob")
            ada_cookie, bob_cookie = cookie_of(ada), cookie_of(bob)
            assert await reaches(podgate, "ada", ada_cookie) == (True, True)
            only_bob = {**both, "users": {"bob": hashed}}
            apply_config(podgate, podgate_config({"auth": only_bob}))
            assert await reaches(podgate, "ada", ada_cookie) == (False, False)
            assert await reaches(podgate, "bob", bob_cookie) == (True, True)
    finally:
        await podgate.stop()


async def test_the_api_signs_a_user_out_everywhere(podgate: Podgate) -> None:
    async with Browser(podgate.public_url) as ada, Browser(podgate.public_url) as tab:
        await ada.start_server("ada")
        assert (await tab.login("ada", next_url="/hub/home")).status == 200
        cookies = [cookie_of(ada), cookie_of(tab)]
        for cookie in cookies:
            assert await reaches(podgate, "ada", cookie) == (True, True)
        assert (await api(podgate, "DELETE", "/users/nobody/sessions")).status == 404
        answer = await api(podgate, "DELETE", "/users/ada/sessions")
        assert answer.status == 204, answer.status
        for cookie in cookies:
            assert await reaches(podgate, "ada", cookie) == (False, False)
    # The user token of a signed-in browser may not sign others out.
    async with Browser(podgate.public_url) as bob:
        await bob.login("bob", next_url="/hub/home")
        xsrf = await bob.xsrf("/hub/home")
        refused = await bob.session.delete(
            bob.url("/hub/api/users/ada/sessions"), headers={"X-XSRFToken": xsrf}
        )
        assert refused.status == 403, refused.status


async def test_a_sign_in_writes_the_user_record_every_replica_watches(
    podgate: Podgate,
) -> None:
    before = time.time()
    async with Browser(podgate.public_url) as ada:
        assert (await ada.login("ada", next_url="/hub/home")).status == 200
        assert podgate.control is not None and podgate.control.kube is not None
        kube = podgate.control.kube
        found = await kube.list("configmaps", "podgate", label_selector=RECORD_SELECTOR)
        [record] = found.items
        assert record["metadata"]["name"] == record_name("ada") == "podgate-user-ada"
        assert record["metadata"]["annotations"][USER_ANNOTATION] == "ada"
        assert int(record["data"][LAST_LOGIN]) >= int(before)
        assert NOT_BEFORE not in record["data"]
        await ada.post("/hub/logout", {"_xsrf": await ada.xsrf("/hub/home")})
        record = await kube.get("configmaps", "podgate", "podgate-user-ada")
        assert before <= int(record["data"][NOT_BEFORE]) <= time.time() + 1
    # Listed through the API (from the record), with no server and not in the config.
    headers = {"Authorization": f"token {TOKEN}"}
    async with (
        aiohttp.ClientSession(headers=headers) as client,
        client.get(podgate.ops_url + "/hub/api/users/ada") as listed,
    ):
        assert listed.status == 200
        model = await listed.json()
    created = datetime.datetime.fromisoformat(model["created"].replace("Z", "+00:00"))
    assert int(before) <= created.timestamp() <= time.time()


async def test_deleting_a_user_through_the_api_ends_their_sessions(podgate: Podgate) -> None:
    async with Browser(podgate.public_url) as ada:
        assert (await ada.login("ada", next_url="/hub/home")).status == 200
        cookie = cookie_of(ada)
        assert (await with_cookie(podgate, "/hub/home", cookie)).status == 200
        assert (await api(podgate, "DELETE", "/users/ada")).status == 204
        assert (await with_cookie(podgate, "/hub/home", cookie)).status != 200
        assert (await api(podgate, "GET", "/users/ada")).status == 404


async def open_socket(
    stack: AsyncExitStack, podgate: Podgate, user: str, cookie: str, **headers: str
) -> aiohttp.ClientWebSocketResponse:
    """A WebSocket to the user's pod on a connection of its own (a fresh one starts in the
    fast lane; one that served a hub page was handed to aiohttp for good)."""
    client = await stack.enter_async_context(aiohttp.ClientSession(cookies={COOKIE: cookie}))
    ws = await client.ws_connect(
        f"{podgate.public_url}/user/{user}/ws",
        headers=headers or None,
        timeout=aiohttp.ClientWSTimeout(ws_close=2),
    )
    stack.push_async_callback(ws.close)
    await ws.send_str("hello")
    reply = await ws.receive(timeout=5)
    assert reply.type == aiohttp.WSMsgType.TEXT and reply.data == "hello", reply
    return ws


async def closed_with(ws: aiohttp.ClientWebSocketResponse, seconds: float = 5.0) -> object:
    """The close frame's (code, reason) the socket gets within `seconds` (bounded)."""
    async with asyncio.timeout(seconds):
        while True:
            message = await ws.receive()
            if message.type == aiohttp.WSMsgType.CLOSE:
                return message.data, message.extra
            assert message.type == aiohttp.WSMsgType.TEXT, message


async def test_a_sign_out_closes_the_users_open_websockets_on_both_lanes(
    podgate: Podgate,
) -> None:
    async with (
        Browser(podgate.public_url) as ada,
        Browser(podgate.public_url) as tab,
        Browser(podgate.public_url) as bob,
        AsyncExitStack() as stack,
    ):
        await ada.start_server("ada")
        await bob.start_server("bob")
        assert (await tab.login("ada", next_url="/hub/home")).status == 200
        fast = await open_socket(stack, podgate, "ada", cookie_of(ada))
        # A body length on the handshake hands it to aiohttp's relay (the other lane).
        slow = await open_socket(stack, podgate, "ada", cookie_of(ada), **{"Content-Length": "0"})
        bobs = await open_socket(stack, podgate, "bob", cookie_of(bob))
        assert podgate.edge is not None
        assert len(podgate.edge.open_websockets) == 3
        assert len(podgate.edge.websockets) == 1  # the one aiohttp relays
        await tab.post("/hub/logout", {"_xsrf": await tab.xsrf("/hub/home")})
        assert await closed_with(fast) == ENDED
        assert await closed_with(slow) == ENDED
        await bobs.send_str("still here")
        assert (await bobs.receive(timeout=5)).data == "still here"
        assert len(podgate.edge.open_websockets) == 1


async def test_a_reload_removing_a_user_closes_their_open_websockets(podgate: Podgate) -> None:
    async with Browser(podgate.public_url) as ada, AsyncExitStack() as stack:
        await ada.start_server("ada")
        ws = await open_socket(stack, podgate, "ada", cookie_of(ada))
        apply_config(podgate, podgate_config({**SETTINGS, "auth": {
            "admins": ["root"], "allowed_users": ["bob"],
        }}))  # fmt: skip
        assert await closed_with(ws) == ENDED
