"""Slow request heads in the fast lane: a 408 past the deadline, a 429 past the per-peer cap.

The cap counts heads under way per peer address; a trusted proxy is exempt
from it (it carries many clients) but not from the deadline. Nothing a client
sends in time is lost: a head completed within the deadline is served.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from typing import Any

import pytest

from edge.settings import EdgeSettings
from routes import RouteSource, RouteTable
from tests.edge.conftest import read_response

PARTIAL_HEAD = b"GET /slow HTTP/1.1\r\nHost: podgate\r\n"
REST_OF_HEAD = b"Accept: */*\r\n\r\n"

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def api_table(url: str) -> RouteTable:
    table = RouteTable()
    table.add("/", url, source=RouteSource.API)
    return table


async def partial_head(port: int, source: str = "127.0.0.1") -> Connection:
    """A connection from `source` that sent part of a request head, and waits."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(PARTIAL_HEAD)
    await writer.drain()
    return reader, writer


async def until_heads_counted(lane: Any, peers: int) -> None:
    """The lane counts a head once its first bytes are read: wait for that, bounded."""
    deadline = time.monotonic() + 10
    while len(lane.heads) != peers:
        assert time.monotonic() < deadline, f"heads under way: {len(lane.heads)} peers"
        await asyncio.sleep(0.02)


def refusals_logged(caplog: pytest.LogCaptureFixture, status: int) -> list[str]:
    """Log lines about refusals with `status`; none of the records may carry a traceback."""
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    return [r.getMessage() for r in caplog.records if r.getMessage().endswith(f": {status}")]


async def test_a_head_not_complete_in_time_is_a_408(make_edge, echo_upstream, caplog) -> None:
    caplog.set_level(logging.INFO)
    settings = EdgeSettings(control_enabled=False, head_timeout=0.5)
    edge = await make_edge(table=api_table(echo_upstream.url), settings=settings)
    started = time.monotonic()
    reader, writer = await partial_head(edge.port)
    try:
        async with asyncio.timeout(10):
            status, head, body = await read_response(reader)
            assert await reader.read() == b""  # and the connection is closed
    finally:
        writer.close()
    assert status == 408
    assert b"Connection: close" in head and b"took too long" in body
    assert time.monotonic() - started >= 0.45
    assert len(edge.server.lane.heads) == 0
    assert refusals_logged(caplog, 408) == [
        "request head from 127.0.0.1 not complete after 0.5 s: 408"
    ]
    assert echo_upstream.log.requests == []  # nothing of it reached the pod


async def test_heads_past_the_cap_of_one_peer_are_a_429(make_edge, echo_upstream, caplog) -> None:
    caplog.set_level(logging.INFO)
    settings = EdgeSettings(control_enabled=False, incomplete_per_address=3)
    edge = await make_edge(table=api_table(echo_upstream.url), settings=settings)
    lane = edge.server.lane
    held = [await partial_head(edge.port) for _ in range(3)]
    other = await partial_head(edge.port, source="127.0.0.2")
    await until_heads_counted(lane, peers=2)
    reader, writer = await partial_head(edge.port)  # the fourth from 127.0.0.1
    try:
        async with asyncio.timeout(10):
            status, head, _ = await read_response(reader)
        assert status == 429
        assert b"Retry-After" in head and b"Connection: close" in head
        assert refusals_logged(caplog, 429) == [
            "3 request heads already under way from 127.0.0.1: 429"
        ]
        # Those within the cap, and the other address, lose nothing: completed, served.
        for _, held_writer in [*held, other]:
            held_writer.write(REST_OF_HEAD)
        async with asyncio.timeout(10):
            for held_reader, _ in [*held, other]:
                status, _, _ = await read_response(held_reader)
                assert status == 200
    finally:
        for _, held_writer in [*held, other, (reader, writer)]:
            held_writer.close()
    assert len(echo_upstream.log.requests) == 4
    await until_heads_counted(lane, peers=0)


async def test_a_trusted_proxy_is_not_capped_but_is_timed(make_edge, echo_upstream) -> None:
    settings = EdgeSettings(
        control_enabled=False,
        incomplete_per_address=2,
        head_timeout=1.0,
        trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),),
    )
    edge = await make_edge(table=api_table(echo_upstream.url), settings=settings)
    held = [await partial_head(edge.port) for _ in range(5)]
    try:
        # Five heads at once from the proxy: none refused; all completed in time, all served.
        for _, writer in held[:4]:
            writer.write(REST_OF_HEAD)
        async with asyncio.timeout(10):
            for reader, _ in held[:4]:
                status, _, _ = await read_response(reader)
                assert status == 200
            status, _, _ = await read_response(held[4][0])  # the fifth never finished
        assert status == 408
    finally:
        for _, writer in held:
            writer.close()
