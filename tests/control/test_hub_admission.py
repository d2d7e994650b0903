"""Hub admission: a few hub handlers at a time, the rest queue; streams and statics bypass."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control.web.admission import admission


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
            asyncio.create_task(client.get("/hub/api/users/ada/server/progress"))
            for _ in range(3)
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
