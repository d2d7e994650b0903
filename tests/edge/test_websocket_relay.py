"""The WebSocket relay end to end: a real aiohttp WebSocket pod, a real edge socket, a real client.

The edge here is a small aiohttp app whose handler calls relay_websocket
directly, so these tests pin the relay's own behaviour; tests/edge/test_websocket_edge.py
runs the same relay through the public app.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import uvloop
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from edge.settings import EdgeSettings
from edge.websocket.aiohttp_lane import relay_websocket
from edge.websocket.settings import WebSocketSettings
from metrics import EdgeStats
from routes import RouteSource, RouteTable

TIMEOUT = 5.0
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 accept-key constant


@dataclass
class PodLog:
    """What the WebSocket pod saw: upgrade request headers and the close code it received."""

    handshakes: list[dict[str, str]] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)
    pings: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)


def pod_app(log: PodLog) -> web.Application:
    """A notebook-like WebSocket pod.

    /echo        echoes text and binary; "close <code> <reason>" makes it close
                 with that code; "ping <data>" makes it ping the client
    /hello       sends "hello" the moment it opens
    /refuse      answers 403 with a short body instead of upgrading
    /refuse-chunked  answers 404 with a chunked body
    """

    async def echo(request: web.Request) -> web.StreamResponse:
        log.handshakes.append(dict(request.headers))
        ws = web.WebSocketResponse(protocols=("v2.kernel", "chat"), autoping=False)
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    if msg.data.startswith("close "):
                        _, code, reason = msg.data.split(" ", 2)
                        await ws.close(code=int(code), message=reason.encode())
                    elif msg.data.startswith("ping "):
                        await ws.ping(msg.data[5:].encode())
                    else:
                        await ws.send_str(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                elif msg.type == WSMsgType.PING:
                    log.pings += 1
                    await ws.pong(msg.data)
        finally:
            log.close_codes.append(ws.close_code)
            log.closed.set()
        return ws

    async def hello(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("hello")
        async for _ in ws:
            pass
        return ws

    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.Response(status=403, text="not your kernel", headers={"X-Pod": "yes"})

    async def refuse_chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=404)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"no ", b"such ", b"kernel"):
            await response.write(part)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/echo", echo)
    app.router.add_get("/hello", hello)
    app.router.add_get("/refuse", refuse)
    app.router.add_get("/refuse-chunked", refuse_chunked)
    return app


@dataclass
class Relay:
    url: str
    stats: EdgeStats
    pod: PodLog


async def _relay_app(target: str, stats: EdgeStats, settings: EdgeSettings) -> web.Application:
    table = RouteTable()
    route = table.add("/", target, source=RouteSource.API)

    async def handle(request: web.Request) -> web.StreamResponse:
        headers = CIMultiDict(request.headers)
        headers["X-Forwarded-For"] = "127.0.0.1"
        return await relay_websocket(
            request, route, route.target.base_path + request.path_qs, headers, stats, settings
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


@pytest.fixture
async def pod() -> AsyncIterator[tuple[str, PodLog]]:
    log = PodLog()
    server = TestServer(pod_app(log), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), log
    finally:
        await server.close()


@pytest.fixture
async def relay(pod: tuple[str, PodLog]) -> AsyncIterator[Relay]:
    stats = EdgeStats()
    settings = EdgeSettings(websocket=WebSocketSettings(handshake_timeout=2))
    server = TestServer(await _relay_app(pod[0], stats, settings), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield Relay(str(server.make_url("")).rstrip("/"), stats, pod[1])
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _receive(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), TIMEOUT)


async def _until(predicate: Any, seconds: float = TIMEOUT) -> None:
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def test_text_and_binary_round_trip(relay: Relay, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(relay.url + "/echo") as ws:
        await ws.send_str("héllo")
        msg = await _receive(ws)
        assert (msg.type, msg.data) == (WSMsgType.TEXT, "héllo")
        payload = bytes(range(256)) * 300
        await ws.send_bytes(payload)
        msg = await _receive(ws)
        assert (msg.type, msg.data) == (WSMsgType.BINARY, payload)


async def test_stats_count_sockets_and_bytes(relay: Relay, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(relay.url + "/echo") as ws:
        assert relay.stats.websockets_active == 1
        await ws.send_bytes(b"x" * 1000)
        await _receive(ws)
    await _until(lambda: relay.stats.websockets_active == 0)
    assert relay.stats.websockets_total == 1
    assert relay.stats.bytes_to_upstream >= 1000
    assert relay.stats.bytes_to_client >= 1000


async def test_pod_speaks_first(relay: Relay, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(relay.url + "/hello") as ws:
        msg = await _receive(ws)
        assert msg.data == "hello"


async def test_subprotocol_negotiated_end_to_end(
    relay: Relay, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(relay.url + "/echo", protocols=("nope", "chat")) as ws:
        assert ws.protocol == "chat"
        assert relay.pod.handshakes[-1]["Sec-WebSocket-Protocol"] == "nope,chat"


async def test_permessage_deflate_negotiated_end_to_end(
    relay: Relay, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(relay.url + "/echo", compress=15) as ws:
        assert ws.compress == 15
        assert "permessage-deflate" in relay.pod.handshakes[-1]["Sec-WebSocket-Extensions"]
        text = "compressible " * 2000
        await ws.send_str(text)
        assert (await _receive(ws)).data == text
    # Compressed on the wire both ways: far fewer bytes than the message.
    assert relay.stats.bytes_to_upstream < len(text) // 4


async def test_pings_and_pongs_pass_both_ways(relay: Relay, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(relay.url + "/echo", autoping=False) as ws:
        await ws.ping(b"from-browser")
        msg = await _receive(ws)
        assert (msg.type, msg.data) == (WSMsgType.PONG, b"from-browser")
        assert relay.pod.pings == 1
        await ws.send_str("ping from-pod")
        msg = await _receive(ws)
        assert (msg.type, msg.data) == (WSMsgType.PING, b"from-pod")


async def test_fragmented_message_arrives_whole(
    relay: Relay, session: aiohttp.ClientSession
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(relay.url.rsplit(":", 1)[1]))
    try:
        writer.write(
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101")
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # the pod's accept for the browser's key
        # "Hello" as a text frame in two fragments, masked as a browser must.
        mask = b"\x01\x02\x03\x04"

        def masked(data: bytes) -> bytes:
            return bytes(b ^ mask[i % 4] for i, b in enumerate(data))

        writer.write(b"\x01\x83" + mask + masked(b"Hel"))
        writer.write(b"\x80\x82" + mask + masked(b"lo"))
        frame = await asyncio.wait_for(reader.readexactly(7), TIMEOUT)
        assert frame == b"\x81\x05Hello"
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("code", [1000, 4001, 1011])
async def test_pod_close_code_and_reason_reach_browser(
    relay: Relay, session: aiohttp.ClientSession, code: int
) -> None:
    async with session.ws_connect(relay.url + "/echo") as ws:
        await ws.send_str(f"close {code} kernel died")
        msg = await _receive(ws)
        assert msg.type == WSMsgType.CLOSE
        assert (msg.data, msg.extra) == (code, "kernel died")
    await _until(lambda: relay.stats.websockets_active == 0)


async def test_browser_close_code_reaches_pod(relay: Relay, session: aiohttp.ClientSession) -> None:
    ws = await session.ws_connect(relay.url + "/echo")
    await ws.close(code=4321, message=b"tab closed")
    await asyncio.wait_for(relay.pod.closed.wait(), TIMEOUT)
    assert relay.pod.close_codes == [4321]
    await _until(lambda: relay.stats.websockets_active == 0)


async def test_browser_drop_closes_pod_side(relay: Relay) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(relay.url.rsplit(":", 1)[1]))
    writer.write(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    writer.transport.abort()  # no close frame: the browser just vanishes
    await asyncio.wait_for(relay.pod.closed.wait(), TIMEOUT)
    assert relay.pod.close_codes[0] != 1000
    await _until(lambda: relay.stats.websockets_active == 0)


async def test_pod_drop_closes_browser_side(
    pod: tuple[str, PodLog], session: aiohttp.ClientSession
) -> None:
    """A pod that vanishes mid-socket: the browser's socket ends too (abnormal close, 1006)."""
    dropped: list[asyncio.StreamWriter] = []

    async def vanish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        await writer.drain()
        dropped.append(writer)
        writer.transport.abort()

    server = await asyncio.start_server(vanish, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stats = EdgeStats()
    edge = TestServer(
        await _relay_app(f"http://127.0.0.1:{port}", stats, EdgeSettings()),
        host="127.0.0.1",
        port=0,
    )
    await edge.start_server()
    try:
        async with session.ws_connect(str(edge.make_url("/x"))) as ws:
            msg = await _receive(ws)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)
        await _until(lambda: stats.websockets_active == 0)
        assert dropped
    finally:
        await edge.close()
        server.close()
        await server.wait_closed()


async def test_pod_refusal_is_relayed(relay: Relay, session: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(relay.url + "/refuse")
    assert info.value.status == 403
    async with session.get(
        relay.url + "/refuse",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        },
    ) as response:
        assert response.status == 403
        assert response.headers["X-Pod"] == "yes"
        assert await response.text() == "not your kernel"
    async with session.get(
        relay.url + "/refuse-chunked",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        },
    ) as response:
        assert response.status == 404
        assert await response.text() == "no such kernel"
    assert relay.stats.websockets_total == 0


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"Sec-WebSocket-Version": "13"}, "Key"),
        (
            {"Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
            "Version",
        ),
        ({"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, "Version"),
        ({"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "c2hvcnQ="}, "Key"),
        ({"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "!!not base64!!"}, "Key"),
    ],
)
async def test_invalid_client_handshake_is_400(
    relay: Relay, session: aiohttp.ClientSession, headers: dict[str, str], problem: str
) -> None:
    async with session.get(
        relay.url + "/echo", headers={"Upgrade": "websocket", "Connection": "Upgrade", **headers}
    ) as response:
        assert response.status == 400
        assert problem in await response.text()
        assert response.headers["Sec-WebSocket-Version"] == "13"
    assert relay.pod.handshakes == []  # the pod never saw it


async def test_unreachable_pod_is_503(
    session: aiohttp.ClientSession, unused_tcp_port_factory: Any
) -> None:
    stats = EdgeStats()
    port = unused_tcp_port_factory()
    edge = TestServer(
        await _relay_app(f"http://127.0.0.1:{port}", stats, EdgeSettings()),
        host="127.0.0.1",
        port=0,
    )
    await edge.start_server()
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(str(edge.make_url("/echo")))
        assert info.value.status == 503
        assert stats.upstream_errors["refused"] == 1
    finally:
        await edge.close()


async def test_silent_pod_is_504(session: aiohttp.ClientSession) -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):  # never answers; ends when the edge gives up
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = EdgeSettings(websocket=WebSocketSettings(handshake_timeout=0.3))
    stats = EdgeStats()
    edge = TestServer(
        await _relay_app(f"http://127.0.0.1:{port}", stats, settings), host="127.0.0.1", port=0
    )
    await edge.start_server()
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(str(edge.make_url("/echo")))
        assert info.value.status == 504
    finally:
        await edge.close()
        server.close()
        await server.wait_closed()


async def test_upstream_headers_reach_pod(relay: Relay, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(relay.url + "/echo?token=abc", headers={"X-Custom": "1"}):
        seen = relay.pod.handshakes[-1]
    assert seen["X-Custom"] == "1"
    assert seen["X-Forwarded-For"] == "127.0.0.1"
    assert seen["Upgrade"].lower() == "websocket"
    assert json.dumps(seen)  # plain strings only


async def test_bulk_transfer_with_slow_reader_is_bounded(
    relay: Relay, session: aiohttp.ClientSession
) -> None:
    """A browser that reads slowly: everything arrives, in order (flow control, not loss)."""
    async with session.ws_connect(relay.url + "/echo", max_msg_size=0) as ws:
        block = b"z" * 256 * 1024
        for n in range(16):
            await ws.send_bytes(bytes([n]) + block)
        await asyncio.sleep(0.2)  # let the pod's answers pile up against a reader that waits
        for n in range(16):
            msg = await _receive(ws)
            assert msg.data[0] == n and len(msg.data) == len(block) + 1


async def test_relay_under_uvloop() -> None:
    """Production runs on uvloop, whose transports differ from asyncio's: relay a session on it."""

    async def scenario() -> tuple[str, int | None, int, int]:
        log = PodLog()
        pod_server = TestServer(pod_app(log), host="127.0.0.1", port=0)
        await pod_server.start_server()
        stats = EdgeStats()
        edge = TestServer(
            await _relay_app(str(pod_server.make_url("")).rstrip("/"), stats, EdgeSettings()),
            host="127.0.0.1",
            port=0,
        )
        await edge.start_server()
        try:
            async with aiohttp.ClientSession() as s, s.ws_connect(edge.make_url("/echo")) as ws:
                await ws.send_str("on uvloop")
                echoed = (await _receive(ws)).data
                big = b"u" * (1024 * 1024)
                for _ in range(4):
                    await ws.send_bytes(big)
                sizes = [len((await _receive(ws)).data) for _ in range(4)]
                await ws.send_str("close 4002 done")
                closing = await _receive(ws)
            await _until(lambda: stats.websockets_active == 0)
            return echoed, closing.data, sum(sizes), stats.websockets_total
        finally:
            await edge.close()
            await pod_server.close()

    echoed, code, received, total = await asyncio.to_thread(uvloop.run, scenario())
    assert (echoed, code, received, total) == ("on uvloop", 4002, 4 * 1024 * 1024, 1)


async def test_browser_drop_with_handler_cancellation(pod: tuple[str, PodLog]) -> None:
    """Served as the wiring serves the edge (handler_cancellation=True): a drop still cleans up."""
    stats = EdgeStats()
    edge = TestServer(
        await _relay_app(pod[0], stats, EdgeSettings()),
        host="127.0.0.1",
        port=0,
        handler_cancellation=True,
    )
    await edge.start_server()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        writer.write(
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        writer.transport.abort()
        await asyncio.wait_for(pod[1].closed.wait(), TIMEOUT)
        await _until(lambda: stats.websockets_active == 0)
    finally:
        await edge.close()


async def test_many_sockets_open_and_close_without_leaks(
    relay: Relay, session: aiohttp.ClientSession
) -> None:
    async def one(n: int) -> str:
        async with session.ws_connect(relay.url + f"/echo?n={n}") as ws:
            await ws.send_str(f"socket {n}")
            return str((await _receive(ws)).data)

    answers = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(50))), TIMEOUT)
    assert answers == [f"socket {n}" for n in range(50)]
    await _until(lambda: relay.stats.websockets_active == 0 and len(relay.pod.close_codes) == 50)
    assert relay.stats.websockets_total == 50
    assert relay.pod.close_codes == [1000] * 50
