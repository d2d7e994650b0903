"""WebSocket upgrades served by the fast lane itself, not handed over to aiohttp.

A valid handshake to a forwardable route is switched by the fast lane (the
lane's handover counter stays at zero, the 101 is counted), bytes and close
codes pass both ways, a browser that stops reading stalls the pod's sender,
a pod's refusal is relayed as it came, an unreachable pod gets the 503 page,
and an odd handshake is still handed over so aiohttp answers it.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from routes import RouteSource, RouteTable
from tests.edge.conftest import raw_exchange

FLOODED = web.AppKey("flooded", list[int])  # bytes the flood handler got out

TIMEOUT = 5.0
HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: edge\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def api_table(url: str) -> RouteTable:
    table = RouteTable()
    table.add("/", url, source=RouteSource.API)
    return table


def pod_app(seen: list[web.Request]) -> web.Application:
    async def echo(request: web.Request) -> web.WebSocketResponse:
        seen.append(request)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.data == "bye":
                await ws.close(code=4001, message=b"pod says bye")
                break
            await ws.send_str("echo:" + message.data)
        return ws

    async def flood(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sent = 0
        piece = b"x" * 65536
        deadline = time.monotonic() + 1.5
        # Bounded in time and bytes: a pod never held back would get far.
        while time.monotonic() < deadline and sent < 256 * 1024 * 1024:
            try:
                async with asyncio.timeout(max(0.01, deadline - time.monotonic())):
                    await ws.send_bytes(piece)
            except (TimeoutError, ConnectionError):
                break
            sent += len(piece)
        request.app[FLOODED].append(sent)
        return ws

    app = web.Application()
    app[FLOODED] = []
    app.router.add_get("/ws", echo)
    app.router.add_get("/flood", flood)
    return app


async def start_pod(seen: list[web.Request]) -> TestServer:
    server = TestServer(pod_app(seen), host="127.0.0.1", port=0)
    await server.start_server()
    return server


async def test_echo_and_close_code_through_the_fast_lane(make_edge, client) -> None:
    seen: list[web.Request] = []
    pod = await start_pod(seen)
    try:
        edge = await make_edge(table=api_table(str(pod.make_url("")).rstrip("/")))
        cookie = f"theme=dark; {edge.settings.cookie_name}=secret-session"
        async with client.ws_connect(f"{edge.url}/ws", headers={"Cookie": cookie}) as ws:
            assert edge.stats.websockets_active == 1
            await ws.send_str("hi")
            async with asyncio.timeout(TIMEOUT):
                assert (await ws.receive()).data == "echo:hi"
                await ws.send_str("bye")
                closing = await ws.receive()
            assert closing.type is WSMsgType.CLOSE
            assert ws.close_code == 4001
        assert edge.server.lane.handed_over == 0  # aiohttp's handler never saw it
        assert [key[1] for key in edge.stats.requests] == [101]
        headers = seen[0].headers
        assert headers["Cookie"] == "theme=dark"  # the session cookie stays at the edge
        assert headers["X-Forwarded-For"] == "127.0.0.1"
        for _ in range(100):  # bounded: the pump closes the browser side once the pod left
            if edge.stats.websockets_active == 0:
                break
            await asyncio.sleep(0.02)
        assert edge.stats.websockets_active == 0
        assert edge.stats.bytes_to_upstream > 0 and edge.stats.bytes_to_client > 0
    finally:
        await pod.close()


async def test_a_browser_that_stops_reading_stalls_the_pod(make_edge) -> None:
    seen: list[web.Request] = []
    pod = await start_pod(seen)
    try:
        edge = await make_edge(table=api_table(str(pod.make_url("")).rstrip("/")))
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        try:
            writer.write(HANDSHAKE.replace(b"/ws", b"/flood"))
            async with asyncio.timeout(TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101 ")
                # Never read again: the pod must be held back, not buffered for.
                for _ in range(100):
                    if pod.app[FLOODED]:
                        break
                    await asyncio.sleep(0.05)
            assert pod.app[FLOODED], "the pod's sender never finished"
            assert pod.app[FLOODED][0] < 32 * 1024 * 1024
            assert edge.server.lane.handed_over == 0
        finally:
            writer.close()
    finally:
        await pod.close()


async def test_a_refusal_is_relayed_and_the_connection_closes(make_edge, scripted_pod) -> None:
    scripted_pod.answers["/ws"] = (
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\nSet-Cookie: a=b\r\n\r\nnope"
    )
    edge = await make_edge(table=api_table(scripted_pod.url))
    follow = b"GET /ws HTTP/1.1\r\nHost: edge\r\n\r\n"
    answer = await raw_exchange(edge.port, HANDSHAKE + follow)
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert answer.endswith(b"\r\n\r\nnope")  # one answer only: the rest is never a request
    assert len(scripted_pod.heads) == 1
    assert b"Upgrade: websocket" in scripted_pod.heads[0]
    assert edge.server.lane.handed_over == 0


async def test_an_unreachable_pod_gets_the_503_page(make_edge, refused_url) -> None:
    edge = await make_edge(table=api_table(refused_url))
    answer = await raw_exchange(edge.port, HANDSHAKE)
    assert answer.startswith(b"HTTP/1.1 503 ")
    assert edge.stats.upstream_errors["refused"] == 1
    assert edge.server.lane.handed_over == 0


async def test_an_odd_handshake_is_handed_over_to_aiohttp(make_edge, scripted_pod) -> None:
    edge = await make_edge(table=api_table(scripted_pod.url))
    no_key = HANDSHAKE.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b"")
    answer = await raw_exchange(
        edge.port, no_key.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    )
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Sec-WebSocket-Key" in answer
    assert scripted_pod.heads == []
    assert edge.server.lane.handed_over == 1


async def test_a_browser_leaving_mid_handshake_costs_nothing(make_edge, silent_upstream) -> None:
    edge = await make_edge(table=api_table(silent_upstream))
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    writer.write(HANDSHAKE)
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    for _ in range(100):  # bounded
        if not edge.server.lane.connections:
            break
        await asyncio.sleep(0.02)
    assert not edge.server.lane.connections
    assert edge.stats.websockets_active == 0
    del reader


async def test_session_cookie_never_reaches_the_browser_in_the_101(make_edge, client) -> None:
    async def upgrade(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        ws.set_cookie(edge.settings.cookie_name, "forged")
        ws.set_cookie("pod-own", "1")
        await ws.prepare(request)
        await ws.send_str("hello")
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/ws", upgrade)
    pod = TestServer(app, host="127.0.0.1", port=0)
    await pod.start_server()
    try:
        edge = await make_edge(table=api_table(str(pod.make_url("")).rstrip("/")))
        async with client.ws_connect(f"{edge.url}/ws") as ws:
            cookies = ws._response.headers.getall("Set-Cookie", [])
            async with asyncio.timeout(TIMEOUT):
                assert (await ws.receive()).data == "hello"
        assert cookies and all(edge.settings.cookie_name not in c for c in cookies)
        assert edge.server.lane.handed_over == 0
    finally:
        await pod.close()


async def test_stopping_the_server_closes_switched_websockets(make_edge, client) -> None:
    seen: list[web.Request] = []
    pod = await start_pod(seen)
    try:
        edge = await make_edge(table=api_table(str(pod.make_url("")).rstrip("/")))
        async with client.ws_connect(f"{edge.url}/ws") as ws:
            await ws.send_str("hi")
            async with asyncio.timeout(TIMEOUT):
                assert (await ws.receive()).data == "echo:hi"
                await edge.server.close()
                ended = await ws.receive()
            assert ended.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)
        assert edge.stats.websockets_active == 0
        assert not edge.server.lane.connections
    finally:
        await pod.close()


async def test_a_frame_sent_with_the_handshake_reaches_the_pod(make_edge) -> None:
    seen: list[web.Request] = []
    pod = await start_pod(seen)
    try:
        edge = await make_edge(table=api_table(str(pod.make_url("")).rstrip("/")))
        mask = b"\x11\x22\x33\x44"
        text = b"early"
        frame = b"\x81" + bytes([0x80 | len(text)]) + mask
        frame += bytes(b ^ mask[i % 4] for i, b in enumerate(text))
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        try:
            writer.write(HANDSHAKE + frame)  # one packet: the frame arrives before the 101
            async with asyncio.timeout(TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101 ")
                echoed = await reader.readexactly(2 + len(b"echo:early"))
            assert echoed == b"\x81\x0aecho:early"
        finally:
            writer.close()
    finally:
        await pod.close()
