"""A pod that answers before it has read the whole upload (413, 401...) and closes.

Servers answer early and close when they refuse a body: nginx and CHP relay
that answer. The user must get an HTTP answer (the pod's own, or the edge's
503/502 page), never a bare connection reset, and the failure is counted
as the pod's, not as the browser going away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from reliability_kit import podgate_config, start_podgate

from podgate.assembly import Podgate

EARLY = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large"


@pytest.fixture
async def early_gate(tmp_path: Path) -> AsyncIterator[Podgate]:
    handlers: set[asyncio.Task[None]] = set()

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(EARLY)
            await writer.drain()
            await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(refuse(reader, writer))
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    server = await asyncio.start_server(track, "127.0.0.1", 0)
    target = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    gate = await start_podgate(
        podgate_config(tmp_path, control=False, routes=[{"path": "/", "target": target}])
    )
    try:
        yield gate
    finally:
        await gate.stop()
        server.close()
        for task in list(handlers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.wait_closed()


async def post(gate: Podgate, size: int) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{gate.public_url}/upload", data=b"x" * size) as response,
    ):
        return response.status, await response.read()


async def test_small_upload_gets_the_pods_early_answer(early_gate: Podgate) -> None:
    assert await post(early_gate, 10) == (413, b"too large")


async def test_large_upload_gets_an_answer_not_a_reset(early_gate: Podgate) -> None:
    try:
        status, _ = await post(early_gate, 10_000_000)
    except aiohttp.ClientError as e:
        pytest.fail(f"the user got no HTTP answer: {e!r}")
    assert status in (413, 502, 503)
    if status != 413:
        assert sum(early_gate.stats.upstream_errors.values()) == 1
