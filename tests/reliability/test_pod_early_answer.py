"""A pod that answers before it has read the whole upload (413, 401...) and closes.

Servers answer early and close when they refuse a body: nginx and CHP relay
that answer. The user must get an HTTP answer (the pod's own, or the edge's
503/502 page), never a bare connection reset, and the failure is counted
as the pod's, not as the browser going away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from reliability_kit import gate_before_raw_pod

from podgate.assembly import Podgate

EARLY = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large"


@pytest.fixture
async def early_gate(tmp_path: Path) -> AsyncIterator[Podgate]:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(EARLY)
        await writer.drain()
        await asyncio.sleep(0.05)

    async with gate_before_raw_pod(tmp_path, refuse) as gate:
        yield gate


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
