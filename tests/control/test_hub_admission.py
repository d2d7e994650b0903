"""Hub admission: a few handlers at a time, the rest queue; streams, statics, slow bodies bypass."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hub_kit import Browser, until
from yarl import URL

from control.web.admission import admission

MakePodgate = Callable[..., Awaitable[Any]]


async def test_hub_handlers_beyond_the_limit_wait_their_turn() -> None:
    running = 0
    most = 0
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return web.Response(text="done")

    app = web.Application(middlewares=[admission(limit=2)])
    app.router.add_get("/hub/home", slow)
    app.router.add_get("/hub/api/users/ada/server/progress", slow)
    async with TestClient(TestServer(app)) as client:
        pages = [asyncio.create_task(client.get("/hub/home")) for _ in range(5)]
        streams = [
            asyncio.create_task(client.get("/hub/api/users/ada/server/progress")) for _ in range(3)
        ]
        for _ in range(100):
            if running == 5:  # 2 pages admitted + 3 streams, which take no place
                break
            await asyncio.sleep(0.01)
        assert running == 5 and most == 5
        release.set()
        answers = await asyncio.gather(*pages, *streams)
        assert [a.status for a in answers] == [200] * 8
        for answer in answers:
            answer.release()


async def _trickling_login(base_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that sent a login head and 1 byte of its 100-byte body, and waits."""
    url = URL(base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(
        b"POST /hub/login HTTP/1.1\r\nHost: podgate\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nu"
    )
    await writer.drain()
    return reader, writer


async def test_trickled_bodies_do_not_hold_the_hub(make_podgate: MakePodgate) -> None:
    """20 clients trickling login bodies (more than the hub's places) leave the hub answering."""
    pg = await make_podgate()
    pool = pg.edge.pool
    trickling = [await _trickling_login(pg.public_url) for _ in range(20)]
    try:
        # Every head went on to the hub, each over a connection of its own (the fast
        # lane relays /hub/ like a pod): the handlers now wait for the rest of their bodies.
        await until(lambda: pool.opened >= 20)
        async with Browser(pg.public_url) as browser:
            started = time.monotonic()
            async with asyncio.timeout(5):
                page = await browser.get("/hub/login")
            assert page.status == 200
            assert time.monotonic() - started < 1.0
        # Nothing lost: each slow client, once its body is complete, gets its answer.
        for _, writer in trickling:
            writer.write(b"=" * 99)
        async with asyncio.timeout(10):
            for reader, _ in trickling:
                status = await reader.readline()
                assert status == b"HTTP/1.1 403 Forbidden\r\n"  # no CSRF token: a stale form
    finally:
        for _, writer in trickling:
            writer.close()
