"""The WebSocket handshake rules (edge.websocket.handshake), and pods that answer the upgrade badly.

Pure rules are checked as data, including hypothesis runs over arbitrary
input (only the module's own exceptions may come out); misbehaving pods are
real sockets speaking raw bytes to the real relay.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from relay_kit import start_relay_edge

from edge.settings import EdgeSettings
from edge.websocket.handshake import (
    MAX_HEAD_BYTES,
    BadPodResponse,
    HandshakeRejected,
    build_upgrade_request,
    check_client_handshake,
    parse_response_head,
    split_response_head,
    wants_websocket,
)
from edge.websocket.settings import WebSocketSettings
from metrics import EdgeStats
from routes import RouteSource, RouteTable

GOOD = {
    "Upgrade": "websocket",
    "Connection": "keep-alive, Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


def _headers(values: dict[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(values))


def test_good_handshake_passes() -> None:
    check_client_handshake("GET", (1, 1), _headers(GOOD))


@pytest.mark.parametrize(
    ("method", "version", "change"),
    [
        ("POST", (1, 1), {}),
        ("GET", (1, 0), {}),
        ("GET", (1, 1), {"Connection": "keep-alive"}),
        ("GET", (1, 1), {"Upgrade": "h2c"}),
        ("GET", (1, 1), {"Sec-WebSocket-Version": "8"}),
        ("GET", (1, 1), {"Sec-WebSocket-Key": ""}),
        ("GET", (1, 1), {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ"}),  # bad padding
        ("GET", (1, 1), {"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),  # 21 bytes
        ("GET", (1, 1), {"Sec-WebSocket-Key": "ключ"}),
    ],
)
def test_bad_handshakes_are_rejected(
    method: str, version: tuple[int, int], change: dict[str, str]
) -> None:
    with pytest.raises(HandshakeRejected):
        check_client_handshake(method, version, _headers({**GOOD, **change}))


def test_repeated_key_or_version_is_rejected() -> None:
    for name in ("Sec-WebSocket-Key", "Sec-WebSocket-Version"):
        headers = CIMultiDict(GOOD)
        headers.add(name, GOOD[name])
        with pytest.raises(HandshakeRejected):
            check_client_handshake("GET", (1, 1), CIMultiDictProxy(headers))


def test_wants_websocket_looks_at_upgrade_only() -> None:
    assert wants_websocket(_headers({"Upgrade": "WebSocket"}))
    assert wants_websocket(_headers({"Upgrade": "foo, websocket"}))
    assert not wants_websocket(_headers({"Upgrade": "h2c"}))
    assert not wants_websocket(_headers({}))


def test_upgrade_request_carries_handshake_and_drops_smuggling() -> None:
    upstream = CIMultiDict(
        {
            "Host": "edge.example",
            "Authorization": "token pod",
            "Connection": "close",  # hop-by-hop: replaced by the edge's own
            "X-Evil": "a\r\nInjected: yes",
            "Sec-WebSocket-Key": "stale",  # always taken from the browser's request
        }
    )
    client = _headers({**GOOD, "Sec-WebSocket-Protocol": "chat", "Sec-WebSocket-Extensions": "x"})
    raw = build_upgrade_request("/user/a/ws?x=1", upstream, client, "10.0.0.1:8888")
    lines = raw.decode().split("\r\n")
    assert lines[0] == "GET /user/a/ws?x=1 HTTP/1.1"
    assert raw.endswith(b"\r\n\r\n")
    assert "Host: edge.example" in lines
    assert "Authorization: token pod" in lines
    assert "Connection: Upgrade" in lines and "Connection: close" not in lines
    assert "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" in lines
    assert "Sec-WebSocket-Protocol: chat" in lines
    assert "Sec-WebSocket-Extensions: x" in lines
    assert not any(line.startswith("Injected") for line in lines)
    assert not any("stale" in line for line in lines)


def test_upgrade_request_without_host_names_the_target() -> None:
    raw = build_upgrade_request("/", CIMultiDict(), _headers(GOOD), "10.0.0.1:8888")
    assert b"\r\nHost: 10.0.0.1:8888\r\n" in raw


def test_response_head_parsing() -> None:
    split = split_response_head(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX: 1\r\n\r\n\x81\x02hi"
    )
    assert split is not None
    head, rest = split
    assert rest == b"\x81\x02hi"
    parsed = parse_response_head(head)
    assert (parsed.status, parsed.reason) == (101, "Switching Protocols")
    assert parsed.headers["upgrade"] == "websocket"
    assert split_response_head(b"HTTP/1.1 101 Swi") is None


@pytest.mark.parametrize(
    "head",
    [
        b"SSH-2.0-OpenSSH",
        b"HTTP/1.1 1O1 Switching",
        b"HTTP/1.1 999 Nope",
        b"HTTP/2 101",
        b"HTTP/1.1 101 OK\r\nno colon here",
        b"HTTP/1.1 101 OK\r\nBad Name: x",
        b"HTTP/1.1 101 OK\r\n: empty name",
    ],
)
def test_malformed_pod_heads_are_rejected(head: bytes) -> None:
    with pytest.raises(BadPodResponse):
        parse_response_head(head)


def test_endless_pod_head_is_rejected() -> None:
    with pytest.raises(BadPodResponse):
        split_response_head(b"HTTP/1.1 101 OK\r\n" + b"X: y\r\n" * (MAX_HEAD_BYTES // 5))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_any_pod_bytes_give_a_head_or_bad_pod_response(data: bytes) -> None:
    try:
        split = split_response_head(data)
        if split is not None:
            parse_response_head(split[0])
    except BadPodResponse:
        pass


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["GET", "POST", "get"]),
    st.dictionaries(
        st.sampled_from(
            ["Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "X"]
        ),
        st.text(max_size=40),
    ),
)
def test_any_client_headers_pass_or_are_rejected(method: str, values: dict[str, str]) -> None:
    with contextlib.suppress(HandshakeRejected):
        check_client_handshake(method, (1, 1), _headers(values))


# -- pods that answer the upgrade badly, through the real relay --------------------------

PodBehaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_pod_edge() -> AsyncIterator[Callable[[PodBehaviour], Awaitable[str]]]:
    """`await start(behaviour)` -> URL of an edge whose only route is a raw-socket pod."""
    servers: list[asyncio.Server] = []
    edges: list[TestServer] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(behaviour: PodBehaviour) -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            try:
                await reader.readuntil(b"\r\n\r\n")
                await behaviour(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        table = RouteTable()
        route = table.add(
            "/", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", source=RouteSource.API
        )
        stats = EdgeStats()
        settings = EdgeSettings(websocket=WebSocketSettings(handshake_timeout=1))

        edge = await start_relay_edge(route, stats, settings)
        edges.append(edge)
        return str(edge.make_url("")).rstrip("/")

    try:
        yield start
    finally:
        for edge in edges:
            await edge.close()
        for writer in writers:
            writer.close()
        for server in servers:
            server.close()
            await server.wait_closed()


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.0\r\n\r\n")
    await writer.drain()


async def _endless_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\n")
    for _ in range(MAX_HEAD_BYTES // 1000 + 2):
        writer.write(b"X-Pad: " + b"p" * 1000 + b"\r\n")
        await writer.drain()
    while await reader.read(65536):  # until the edge gives up on us
        pass


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


async def _short_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\nonly this")
    await writer.drain()


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [(_garbage, 502), (_endless_head, 502), (_hang_up, 503)],
)
async def test_bad_pod_answers_become_gateway_errors(
    raw_pod_edge: Callable[[PodBehaviour], Awaitable[str]], behaviour: PodBehaviour, status: int
) -> None:
    url = await raw_pod_edge(behaviour)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(url + "/ws")
        assert info.value.status == status
        # The edge keeps serving: the next attempt gets the same clear answer.
        with pytest.raises(aiohttp.WSServerHandshakeError) as again:
            await session.ws_connect(url + "/ws")
        assert again.value.status == status


async def test_pod_refusal_cut_short_ends_the_browser_response(
    raw_pod_edge: Callable[[PodBehaviour], Awaitable[str]],
) -> None:
    url = await raw_pod_edge(_short_body)
    async with (
        aiohttp.ClientSession() as session,
        session.get(url + "/ws", headers=GOOD) as response,
    ):
        assert response.status == 403
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def _interim_then_refusal(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
    writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 3\r\nX-Why: token\r\n\r\nno!")
    await writer.drain()


async def _body_until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nbye")
    await writer.drain()


@pytest.mark.parametrize(
    ("behaviour", "status", "body"),
    [(_interim_then_refusal, 401, b"no!"), (_body_until_close, 400, b"bye")],
)
async def test_pod_refusals_are_relayed_as_framed(
    raw_pod_edge: Callable[[PodBehaviour], Awaitable[str]],
    behaviour: PodBehaviour,
    status: int,
    body: bytes,
) -> None:
    url = await raw_pod_edge(behaviour)
    async with (
        aiohttp.ClientSession() as session,
        session.get(url + "/ws", headers=GOOD) as response,
    ):
        assert response.status == status
        assert await response.read() == body


async def _accept_and_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    while data := await reader.read(65536):
        writer.write(data)


_KEY = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /ws HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + _KEY
        + b"Sec-WebSocket-Version: 13\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost: e\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + b"Sec-WebSocket-Version: 13\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost: e\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + _KEY
        + b"Sec-WebSocket-Version: 13, 8\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost: e\r\nUpgrade: websocket\r\nConnection: close\r\n"
        + _KEY
        + b"Sec-WebSocket-Version: 13\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost: e\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + b"Sec-WebSocket-Key: \xff\xfe\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ],
    ids=["http10", "no-key", "two-versions", "no-connection-upgrade", "binary-key"],
)
async def test_malformed_handshakes_over_raw_sockets(
    raw_pod_edge: Callable[[PodBehaviour], Awaitable[str]], raw: bytes
) -> None:
    """A 4xx (never a 500, never a hang), and a good handshake on a fresh connection still works."""
    url = await raw_pod_edge(_accept_and_echo)
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    assert status_line.split(b" ")[1] == b"400", status_line

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: e\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + _KEY
            + b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101")
    finally:
        writer.close()
        await writer.wait_closed()
