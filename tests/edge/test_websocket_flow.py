"""Flow control and byte boundaries of the relay: nothing piles up, nothing is lost at the switch.

A side that stops reading must make the other side's sender stall (the
edge never buffers an unbounded stream), and bytes that arrive in the same
packet as a handshake (a browser's first frame, a pod's greeting) must
still be relayed. Raw sockets on both ends where the test needs control of
what is read when.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from relay_kit import start_relay_edge

from edge.settings import EdgeSettings
from metrics import EdgeStats
from routes import RouteSource, RouteTable

TIMEOUT = 5.0
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: edge\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
MASK = b"\x11\x22\x33\x44"
STALL_LIMIT = 256 * 1024 * 1024  # a sender that gets this far was never held back


def _masked_text(text: bytes) -> bytes:
    """A masked, unfragmented text frame (payload under 126 bytes), as a browser sends it."""
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(text))
    return b"\x81" + bytes([0x80 | len(text)]) + MASK + body


def _accept(request: bytes) -> bytes:
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


@dataclass
class RawPod:
    """A pod that speaks raw bytes: what it received, and a hook to run after its 101."""

    received: bytearray
    port: int


PodScript = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytearray], Awaitable[None]]
EdgeTo = Callable[[PodScript], Awaitable[tuple[int, RawPod]]]


@pytest.fixture
async def edge_to() -> AsyncIterator[EdgeTo]:
    """`await edge_to(script)` -> (edge port, pod): an edge whose one route is a raw pod."""
    servers: list[asyncio.Server] = []
    edges: list[TestServer] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(script: PodScript) -> tuple[int, RawPod]:
        received = bytearray()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            try:
                request = await reader.readuntil(b"\r\n\r\n")
                writer.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                    + _accept(request)
                    + b"\r\n\r\n"
                )
                await script(reader, writer, received)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        route = RouteTable().add("/", f"http://127.0.0.1:{port}", source=RouteSource.API)
        stats, settings = EdgeStats(), EdgeSettings()

        edge = await start_relay_edge(route, stats, settings)
        edges.append(edge)
        assert edge.port is not None
        return edge.port, RawPod(received, port)

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


async def _read_all(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, got: bytearray
) -> None:
    while data := await reader.read(65536):
        got += data


async def _greet_in_same_packet(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, got: bytearray
) -> None:
    writer.write(b"\x81\x05hello")  # buffered with the 101 above: one write, one packet
    await writer.drain()
    await _read_all(reader, writer, got)


async def _never_read(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, got: bytearray
) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    writer.transport.pause_reading()
    await asyncio.sleep(1.5)  # longer than the sender tries; then the test is over


async def _open(port: int, first: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HANDSHAKE + first)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(int(TIMEOUT / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def test_browser_frame_sent_with_the_handshake_reaches_pod(edge_to: EdgeTo) -> None:
    port, pod = await edge_to(_read_all)
    frame = _masked_text(b"early")
    _, writer = await _open(port, first=frame)
    try:
        await _until(lambda: bytes(pod.received) == frame)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_pod_greeting_in_the_101_packet_reaches_browser(edge_to: EdgeTo) -> None:
    port, _ = await edge_to(_greet_in_same_packet)
    reader, writer = await _open(port)
    try:
        assert await asyncio.wait_for(reader.readexactly(7), TIMEOUT) == b"\x81\x05hello"
    finally:
        writer.close()
        await writer.wait_closed()


async def test_pod_that_stops_reading_stalls_the_browser(edge_to: EdgeTo) -> None:
    """Browser -> pod: the browser's sends block instead of piling up in the edge."""
    port, _ = await edge_to(_never_read)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{port}/ws", max_msg_size=0) as ws,
    ):
        block = b"s" * (1024 * 1024)
        sent = 0
        deadline = time.monotonic() + 1.0
        try:
            while sent < STALL_LIMIT and time.monotonic() < deadline:
                await asyncio.wait_for(ws.send_bytes(block), deadline - time.monotonic())
                sent += len(block)
        except TimeoutError:
            pass
        assert sent < STALL_LIMIT // 4, f"sent {sent} bytes into a pod that reads nothing"


async def _flood(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, got: bytearray
) -> None:
    """Send unmasked binary frames of 64 KiB until held back; `got` records how much went out."""
    frame = b"\x82\x7f" + (65536).to_bytes(8, "big") + b"f" * 65536
    deadline = time.monotonic() + 1.0
    sent = 0
    while sent < STALL_LIMIT and time.monotonic() < deadline:
        writer.write(frame)
        try:
            await asyncio.wait_for(writer.drain(), max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        sent += len(frame)
    got += sent.to_bytes(8, "big")
    await _read_all(reader, writer, bytearray())


async def test_browser_that_stops_reading_stalls_the_pod(edge_to: EdgeTo) -> None:
    """Pod -> browser: the pod's writes block instead of piling up in the edge."""
    port, pod = await edge_to(_flood)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
    try:
        writer.write(HANDSHAKE)
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        writer.transport.pause_reading()  # a browser tab that stopped reading
        await _until(lambda: len(pod.received) == 8)
        sent = int.from_bytes(pod.received, "big")
        assert sent < STALL_LIMIT // 4, f"pod pushed {sent} bytes to a browser that reads nothing"
    finally:
        writer.close()
        await writer.wait_closed()
