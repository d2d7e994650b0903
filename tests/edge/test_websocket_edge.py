"""WebSockets through the public edge (edge.app): cookie, authorization, headers, then the relay.

The pod is a real aiohttp WebSocket server that reports the upgrade request
it received; the browser is a real aiohttp client carrying (or not) a real
signed session cookie.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from edge.settings import EdgeSettings
from routes import RouteSource, RouteTable

TIMEOUT = 5.0
COOKIE = "podgate-session"
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


def _pod_app() -> web.Application:
    """Echoes messages; the first message it sends is the upgrade request's headers as JSON."""

    async def socket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("v1.kernel.websocket.jupyter.org",))
        ws.set_cookie(COOKIE, "forged-by-pod")
        ws.set_cookie("pod-own", "1")
        await ws.prepare(request)
        await ws.send_str(json.dumps({"path": request.path_qs, "headers": dict(request.headers)}))
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                if msg.data == "bye":
                    await ws.close(code=4100, message=b"see you")
                else:
                    await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/{tail:.*}", socket)
    return app


@pytest.fixture
async def ws_pod() -> AsyncIterator[str]:
    server = TestServer(_pod_app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def user_edge(make_edge: Any, ws_pod: str) -> Any:
    table = RouteTable()
    table.add(
        "/user/alice", ws_pod, source=RouteSource.PODS, user="alice", data={"token": "pod-secret"}
    )
    table.add("/proxied", ws_pod, source=RouteSource.API)
    return await make_edge(table=table, settings=EdgeSettings())


async def test_user_websocket_through_edge(
    user_edge: Any, client: aiohttp.ClientSession, session_codec: Any
) -> None:
    cookie = f"{COOKIE}={session_codec.issue('alice')}; theme=dark"
    async with client.ws_connect(
        user_edge.url + "/user/alice/api/kernels/k1/channels?session_id=s1",
        headers={"Cookie": cookie},
        protocols=("v1.kernel.websocket.jupyter.org",),
    ) as ws:
        hello = json.loads((await asyncio.wait_for(ws.receive(), TIMEOUT)).data)
        assert ws.protocol == "v1.kernel.websocket.jupyter.org"
        assert hello["path"] == "/user/alice/api/kernels/k1/channels?session_id=s1"
        seen = hello["headers"]
        assert seen["Authorization"] == "token pod-secret"  # the pod's token, added by the edge
        assert seen["Cookie"] == "theme=dark"  # the podgate session never reaches the pod
        assert seen["X-Forwarded-For"] == "127.0.0.1"
        await ws.send_str("ping?")
        assert (await asyncio.wait_for(ws.receive(), TIMEOUT)).data == "ping?"
        assert user_edge.stats.websockets_active == 1
        await ws.send_str("bye")
        closing = await asyncio.wait_for(ws.receive(), TIMEOUT)
        assert (closing.type, closing.data, closing.extra) == (WSMsgType.CLOSE, 4100, "see you")
    for _ in range(200):
        if user_edge.stats.websockets_active == 0:
            break
        await asyncio.sleep(0.01)
    assert user_edge.stats.websockets_active == 0
    assert user_edge.stats.websockets_total == 1
    assert user_edge.stats.bytes_to_client > 0 and user_edge.stats.bytes_to_upstream > 0


async def test_websocket_without_session_never_reaches_pod(
    user_edge: Any, client: aiohttp.ClientSession
) -> None:
    async with client.get(
        user_edge.url + "/user/alice/api/kernels/k1/channels",
        headers=UPGRADE,
        allow_redirects=False,
    ) as response:
        assert response.status == 302
        assert response.headers["Location"].startswith("/hub/login?next=")
    assert user_edge.stats.websockets_total == 0


async def test_websocket_of_another_user_is_refused(
    user_edge: Any, client: aiohttp.ClientSession, session_codec: Any
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(
            user_edge.url + "/user/alice/api/kernels/k1/channels",
            headers={"Cookie": f"{COOKIE}={session_codec.issue('mallory')}"},
        )
    assert info.value.status == 403
    assert user_edge.stats.websockets_total == 0


async def test_api_route_websocket_needs_no_cookie(
    user_edge: Any, client: aiohttp.ClientSession
) -> None:
    async with client.ws_connect(user_edge.url + "/proxied/socket") as ws:
        hello = json.loads((await asyncio.wait_for(ws.receive(), TIMEOUT)).data)
        assert hello["path"] == "/proxied/socket"


async def test_bad_handshake_through_edge_is_400(
    user_edge: Any, client: aiohttp.ClientSession
) -> None:
    async with client.get(
        user_edge.url + "/proxied/socket",
        headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"},
    ) as response:
        assert response.status == 400
    assert user_edge.stats.websockets_total == 0


async def test_unreachable_pod_through_edge_is_503(
    make_edge: Any, refused_url: str, client: aiohttp.ClientSession
) -> None:
    table = RouteTable()
    table.add("/", refused_url, source=RouteSource.API)
    edge = await make_edge(table=table, settings=EdgeSettings(control_enabled=False))
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(edge.url + "/anything")
    assert info.value.status == 503
    assert edge.stats.upstream_errors["refused"] == 1
    async with client.get(edge.url + "/anything", headers=UPGRADE) as response:
        assert response.status == 503
        assert "text/html" in response.headers["Content-Type"]


async def test_pod_cannot_set_session_cookie_on_101(user_edge: Any, session_codec: Any) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", user_edge.port)
    try:
        request = "".join(f"{k}: {v}\r\n" for k, v in UPGRADE.items())
        writer.write(
            f"GET /user/alice/ws HTTP/1.1\r\nHost: edge\r\n{request}"
            f"Cookie: {COOKIE}={session_codec.issue('alice')}\r\n\r\n".encode()
        )
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)).decode()
    finally:
        writer.close()
        await writer.wait_closed()
    assert head.startswith("HTTP/1.1 101")
    set_cookies = [line for line in head.split("\r\n") if line.lower().startswith("set-cookie:")]
    assert any("pod-own=" in line for line in set_cookies)  # the pod's own cookies pass
    assert not any(f"{COOKIE}=" in line for line in set_cookies)  # never the podgate session


async def test_socket_traffic_counts_as_route_activity(
    user_edge: Any, client: aiohttp.ClientSession
) -> None:
    """The idle culler reads last_activity: a busy notebook socket keeps its server alive."""
    route = user_edge.table.get("/proxied")
    async with client.ws_connect(user_edge.url + "/proxied/socket") as ws:
        await asyncio.wait_for(ws.receive(), TIMEOUT)  # the pod's hello
        route.last_activity = 0.0  # as if the socket had been quiet for ages
        await ws.send_str("still here")
        assert (await asyncio.wait_for(ws.receive(), TIMEOUT)).data == "still here"
        assert time.time() - route.last_activity < TIMEOUT
