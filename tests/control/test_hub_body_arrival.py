"""Hub bodies arrive whole before a request is admitted: a deadline, and a cap per client address.

Through a real podgate: a body not complete in time is a 408 page and a closed
connection; bodies under way past the cap from one client address are a 429,
the address read from X-Forwarded-For only when the peer is a trusted proxy.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hub_kit import until
from yarl import URL

from control.web.body_arrival import BodyArrival

MakePodgate = Callable[..., Awaitable[Any]]
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def trickling_login(base_url: str, *, source: str = "127.0.0.1", xff: str = "") -> Connection:
    """A login POST whose head went out whole and whose 100-byte body stopped after 1 byte."""
    url = URL(base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port, local_addr=(source, 0))
    forwarded = f"X-Forwarded-For: {xff}\r\n" if xff else ""
    writer.write(
        (
            "POST /hub/login HTTP/1.1\r\nHost: podgate\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"{forwarded}Content-Length: 100\r\n\r\nu"
        ).encode()
    )
    await writer.drain()
    return reader, writer


def body_arrival_of(pg: Any) -> BodyArrival:
    # The edge serves the hub application itself as the public app (edge.app.build_public_app).
    return next(m for m in pg.hub_app.middlewares if isinstance(m, BodyArrival))


async def answer_of(reader: asyncio.StreamReader, seconds: float = 10.0) -> tuple[bytes, bytes]:
    """(head, body) of the answer on a connection (aiohttp may linger before it closes)."""
    async with asyncio.timeout(seconds):
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
        assert length is not None, head
        body = await reader.readexactly(int(length.group(1)))
    return head, body


def refusals_logged(caplog: pytest.LogCaptureFixture, status: int) -> list[str]:
    """Log lines about refusals with `status`; none of the records may carry a traceback."""
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    return [r.getMessage() for r in caplog.records if r.getMessage().endswith(f": {status}")]


async def test_a_body_not_complete_in_time_is_a_408(
    make_podgate: MakePodgate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pg = await make_podgate({"edge": {"hub_body_timeout": 0.5}})
    started = time.monotonic()
    reader, writer = await trickling_login(pg.public_url)
    try:
        head, body = await answer_of(reader)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"Connection: close" in head
    assert b"Content-Security-Policy" in head  # a hub page like any other
    assert b"took too long" in body
    assert time.monotonic() - started >= 0.45
    assert len(refusals_logged(caplog, 408)) == 1


async def test_bodies_past_the_cap_of_one_client_are_a_429(
    make_podgate: MakePodgate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # 127.0.0.1 is the ingress: its X-Forwarded-For names the client. 127.0.0.2 is not.
    pg = await make_podgate(
        {"edge": {"incomplete_per_address": 3, "trusted_proxies": ["127.0.0.1/32"]}}
    )
    held = [await trickling_login(pg.public_url, xff="10.0.0.1") for _ in range(3)]
    others = [
        await trickling_login(pg.public_url, xff="10.0.0.2"),  # another client of the ingress
        await trickling_login(pg.public_url, source="127.0.0.2", xff="10.0.0.1"),  # a claim
    ]
    try:
        arrival = body_arrival_of(pg)
        await until(lambda: arrival.under_way("10.0.0.1") == 3 and len(arrival.arriving) == 3)
        reader, writer = await trickling_login(pg.public_url, xff="10.0.0.1")
        head, body = await answer_of(reader)
        writer.close()
        assert head.startswith(b"HTTP/1.1 429 ")
        assert b"Retry-After" in head and b"Connection: close" in head
        assert b"still arriving from your address" in body
        assert [line.split(" from ")[1] for line in refusals_logged(caplog, 429)] == [
            "10.0.0.1: 429"
        ]
        # Nothing else was refused: each completes its body and gets the login's answer.
        for _, other_writer in [*held, *others]:
            other_writer.write(b"=" * 99)
        for other_reader, _ in [*held, *others]:
            async with asyncio.timeout(10):
                status = await other_reader.readline()
            assert status == b"HTTP/1.1 403 Forbidden\r\n"  # no CSRF token: a stale form
    finally:
        for _, other_writer in [*held, *others]:
            other_writer.close()
