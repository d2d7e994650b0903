"""SIGTERM drains a real podgate process: in-flight answers, 1001 for WebSockets, exit 0.

podgate runs as `podgate run` (proxy-only, one static route to a pod served
by this test process). Requests go through both lanes: the fast lane, and
aiohttp's path (reached with a head too large for the fast lane).
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.websocket.farewell import REASON, Farewell, FrameCursor, close_frame
from tests.integration.jupyter_kit import PodgateProcess, eventually, start_podgate_process

GRACE = 8.0
SLOW = 1.0  # seconds the pod takes for /slow
TO_AIOHTTP = {"X-Pad-1": "a" * 5000, "X-Pad-2": "b" * 5000}


@dataclass
class Pod:
    """What the pod saw: requests started, WebSocket messages and the close codes it got."""

    url: str = ""
    slow_started: int = 0
    messages: list[str] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)


def pod_app(pod: Pod, slow_seconds: float = SLOW, prefix: str = "") -> web.Application:
    """A pod with a slow answer at <prefix>/slow and a WebSocket echo at <prefix>/ws."""

    async def slow(request: web.Request) -> web.Response:
        pod.slow_started += 1
        await asyncio.sleep(slow_seconds)
        return web.Response(text="slow done")

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                pod.messages.append(message.data)
                await ws.send_str("echo:" + message.data)
        pod.close_codes.append(ws.close_code)
        return ws

    app = web.Application()
    app.router.add_get(f"{prefix}/slow", slow)
    app.router.add_get(f"{prefix}/ws", websocket)
    return app


@pytest.fixture
async def pod() -> AsyncIterator[Pod]:
    seen = Pod()
    server = TestServer(pod_app(seen), host="127.0.0.1", port=0)
    await server.start_server()
    seen.url = str(server.make_url("")).rstrip("/")
    try:
        yield seen
    finally:
        await server.close()


@pytest.fixture
async def podgate(pod: Pod, tmp_path: Path) -> AsyncIterator[PodgateProcess]:
    config = {
        "listen": "127.0.0.1:0",
        "ops_listen": "127.0.0.1:0",
        "control": {"enabled": False},
        "routes": [{"path": "/", "target": pod.url}],
        "shutdown_grace_seconds": GRACE,
        "log_format": "json",
    }
    process = await start_podgate_process(config, tmp_path)
    try:
        yield process
    finally:
        await process.end()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def refuses_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def test_sigterm_answers_requests_in_flight_refuses_new_ones_and_exits_0(
    podgate: PodgateProcess, pod: Pod
) -> None:
    async with aiohttp.ClientSession() as client:

        async def fetch(headers: dict[str, str]) -> tuple[int, str]:
            async with client.get(f"{podgate.public}/slow", headers=headers) as response:
                return response.status, await response.text()

        fetches = [asyncio.create_task(fetch(h)) for h in ({}, {}, {}, TO_AIOHTTP, TO_AIOHTTP)]

        async def all_started() -> bool:
            return pod.slow_started == len(fetches)

        await eventually(all_started, 5, "the pod received every slow request")
        stopped_at = time.monotonic()
        podgate.process.send_signal(signal.SIGTERM)
        await eventually(
            lambda: refuses_connections(port_of(podgate.public)), 2, "new connections refused"
        )
        async with client.get(f"{podgate.ops}/readyz") as ready:
            assert ready.status == 503  # draining: the Service stops sending traffic here
        answers = await asyncio.wait_for(asyncio.gather(*fetches), GRACE)
        assert answers == [(200, "slow done")] * len(fetches)
        status = await asyncio.wait_for(podgate.process.wait(), GRACE)
    assert status == 0
    assert time.monotonic() - stopped_at < GRACE
    assert '"message": "stopped"' in podgate.log.read_text()


async def test_sigterm_closes_websockets_with_1001_both_ways(
    podgate: PodgateProcess, pod: Pod
) -> None:
    async with aiohttp.ClientSession() as client:
        sockets = [
            await client.ws_connect(f"{podgate.public}/ws", headers=headers)
            for headers in ({}, TO_AIOHTTP)
        ]
        try:
            for n, ws in enumerate(sockets):
                await ws.send_str(f"hello {n}")
                assert (await asyncio.wait_for(ws.receive(), 5)).data == f"echo:hello {n}"
            stopped_at = time.monotonic()
            podgate.process.send_signal(signal.SIGTERM)
            # Both read at once, as browsers do: each answers its close frame at
            # once, inside the time the relay lingers for the answer.
            messages = await asyncio.gather(
                *(asyncio.wait_for(ws.receive(), GRACE) for ws in sockets)
            )
            for ws, message in zip(sockets, messages, strict=True):
                assert message.type is WSMsgType.CLOSE
                assert ws.close_code == 1001
            status = await asyncio.wait_for(podgate.process.wait(), GRACE)
        finally:
            for ws in sockets:
                await ws.close()
    assert status == 0
    assert time.monotonic() - stopped_at < 3.0  # closed promptly, not at the grace's end

    async def pod_saw_both_closes() -> bool:
        return len(pod.close_codes) == 2

    await eventually(pod_saw_both_closes, 3, "the pod saw both sockets close")
    assert pod.close_codes == [1001, 1001]


def masked_text_frame(text: bytes, key: bytes = b"\x01\x02\x03\x04") -> bytes:
    masked = bytes(byte ^ key[i % 4] for i, byte in enumerate(text))
    return bytes((0x81, 0x80 | len(text))) + key + masked


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    assert not second & 0x80, "frames toward the browser are never masked"
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    return first & 0x0F, await reader.readexactly(length)


async def test_a_frame_half_sent_at_sigterm_is_finished_before_the_close(
    podgate: PodgateProcess, pod: Pod
) -> None:
    """The close toward the pod waits for the frame boundary: the pod gets the whole message."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(podgate.public))
    try:
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: edge\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + os.urandom(16).hex()[:22].encode() + b"==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 ")
        frame = masked_text_frame(b"split across the stop")
        writer.write(frame[:9])  # header, key and three bytes of the payload
        await writer.drain()
        await asyncio.sleep(0.2)
        podgate.process.send_signal(signal.SIGTERM)
        # The pod side was at a boundary: the browser hears 1001 at once.
        opcode, payload = await asyncio.wait_for(read_frame(reader), 5)
        assert (opcode, payload[:2]) == (0x8, struct.pack("!H", 1001))
        writer.write(frame[9:])  # the rest of the message, after the stop began
        writer.write(bytes((0x88, 0x82)) + b"\0\0\0\0" + struct.pack("!H", 1001))
        await writer.drain()
        status = await asyncio.wait_for(podgate.process.wait(), GRACE)
    finally:
        writer.close()
    assert status == 0

    async def pod_saw_the_close() -> bool:
        return bool(pod.close_codes)

    await eventually(pod_saw_the_close, 3, "the pod saw the socket close")
    assert pod.messages == ["split across the stop"]
    assert pod.close_codes == [1001]


# -- where the goodbye goes: frame boundaries in relayed bytes (edge.websocket.farewell) --------


def _frame(opcode: int, payload: bytes, masked: bool) -> bytes:
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head = bytes((0x80 | opcode, mask_bit | size))
    elif size < 65536:
        head = bytes((0x80 | opcode, mask_bit | 126)) + struct.pack("!H", size)
    else:
        head = bytes((0x80 | opcode, mask_bit | 127)) + struct.pack("!Q", size)
    return head + (b"\0\0\0\0" if masked else b"") + payload


@given(
    sizes=st.lists(st.sampled_from([0, 1, 125, 126, 300, 65535, 65536, 70000]), max_size=6),
    masked=st.booleans(),
    cuts=st.lists(st.integers(min_value=1, max_value=70000), max_size=8),
)
@settings(max_examples=150, deadline=None)
def test_the_cursor_finds_every_frame_boundary_however_the_bytes_are_split(
    sizes: list[int], masked: bool, cuts: list[int]
) -> None:
    frames = [_frame(0x2, b"x" * size, masked) for size in sizes]
    stream = b"".join(frames)
    boundaries = {0}
    at = 0
    for frame in frames:
        at += len(frame)
        boundaries.add(at)
    # Cut the stream into reads at arbitrary points.
    points = sorted({min(c, len(stream)) for c in cuts} | {len(stream)})
    cursor = FrameCursor()
    start = 0
    for end in points:
        read = stream[start:end]
        # Stopping at a boundary lands exactly on the next one inside this read, if any.
        probe = FrameCursor()
        probe.left, probe.partial = cursor.left, cursor.partial
        stop = probe.follow(read, stop_at_boundary=True)
        inside = [b for b in sorted(boundaries) if start <= b <= end]
        if probe.at_boundary:
            assert start + stop == inside[0]
        else:
            assert stop == len(read) and inside in ([], [end])
        assert cursor.follow(read) == len(read)
        assert cursor.at_boundary == (end in boundaries)
        start = end


def test_farewell_finishes_the_frame_in_flight_then_closes_each_way() -> None:
    farewell = Farewell()
    message = _frame(0x1, b"hello pod", masked=True)
    assert farewell.browser_bytes(message[:5]) == message[:5]
    to_pod, to_browser = farewell.leave()
    assert to_pod == b""  # mid-frame: the close waits for its end
    assert to_browser[:4] == bytes((0x88, 0x02 + len(REASON))) + struct.pack("!H", 1001)
    relayed = farewell.browser_bytes(message[5:] + _frame(0x1, b"too late", masked=True))
    assert relayed.startswith(message[5:])
    close = relayed[len(message) - 5 :]
    assert close[0] == 0x88 and close[1] & 0x80  # a masked close for the pod
    assert farewell.pod_bytes(_frame(0x1, b"dropped", masked=False)) == b""
    assert not farewell.over
    farewell.browser_bytes(close_frame(masked=True))
    farewell.pod_bytes(close_frame(masked=False))
    assert farewell.over
