"""The spawn progress page in a real browser (headless Chromium, driven over DevTools).

A tiny app serves the real page, the real spawn.js and static files behind
the real security headers (so the strict CSP is enforced by the browser),
and an event stream that sends three progress events, waits for the test,
then says ready. The browser must show the three messages and the bar, then
end up on `next`. Screenshots are kept in the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from chromium_kit import chromium, devtools

from control.pages import add_static_routes, security_headers, spawn_pending_page

PROGRESS = [(10, "Server requested"), (40, "Pulling image kubesim/echo"), (70, "Container started")]


class SpawnStory:
    """The server side of one spawn: three events, then ready once the test says so."""

    def __init__(self, *, failure: str | None = None) -> None:
        self.release = asyncio.Event()
        self.failure = failure  # end with this failure instead of ready

    def app(self) -> web.Application:
        app = web.Application(middlewares=[security_headers])
        app.router.add_get("/hub/spawn-pending/ada", self.pending)
        app.router.add_get("/hub/api/users/ada/server/progress", self.progress)
        app.router.add_get("/user/ada/lab", self.landed)
        add_static_routes(app)
        return app

    async def pending(self, request: web.Request) -> web.Response:
        page = spawn_pending_page("ada", xsrf="token", events=[], next_url="/user/ada/lab")
        return web.Response(text=page, content_type="text/html")

    async def progress(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        for value, message in PROGRESS:
            await _send(response, {"progress": value, "message": message})
            await asyncio.sleep(0.05)
        await asyncio.wait_for(self.release.wait(), timeout=30)
        if self.failure is not None:
            await _send(response, {"progress": 100, "failed": True, "message": self.failure})
            return response
        ready = {"progress": 100, "ready": True, "message": "Server ready", "url": "/user/ada/"}
        await _send(response, ready)
        return response

    async def landed(self, request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>lab</title><p>landed in the lab</p>",
                            content_type="text/html")  # fmt: skip


async def _send(response: web.StreamResponse, event: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(event)}\n\n".encode())


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[int]:
    """A headless Chromium (tests/chromium_kit.py): its DevTools port."""
    async with chromium(tmp_path) as port:
        yield port


@asynccontextmanager
async def serve(story: SpawnStory) -> AsyncIterator[str]:
    server = TestServer(story.app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        story.release.set()
        await server.close()


async def test_browser_follows_progress_then_lands_on_next(browser: int, tmp_path: Path) -> None:
    story = SpawnStory()
    async with asyncio.timeout(60), serve(story) as base, devtools(browser) as tools:
        await tools.call("Page.navigate", url=f"{base}/hub/spawn-pending/ada")
        shown = await tools.wait_for(
            "document.querySelectorAll('#log li').length === 3"
            " && Array.from(document.querySelectorAll('#log li'), li => li.textContent)"
        )
        assert shown == [message for _, message in PROGRESS]
        assert await tools.evaluate("document.getElementById('progress').value") == 70
        assert await tools.evaluate("document.getElementById('failure').hidden") is True
        picture = await tools.screenshot(tmp_path / "spawn-pending.png")
        assert picture.startswith(b"\x89PNG")

        story.release.set()
        landed = await tools.wait_for(
            f"location.href === {json.dumps(base + '/user/ada/lab')} && "
            "document.readyState === 'complete' && document.body.innerText"
        )
        assert landed == "landed in the lab"
        await tools.screenshot(tmp_path / "landed.png")


async def test_browser_shows_a_failed_spawn_with_retry(browser: int, tmp_path: Path) -> None:
    reason = "The image kubesim/nope cannot be pulled."
    story = SpawnStory(failure=reason)
    story.release.set()
    async with asyncio.timeout(60), serve(story) as base, devtools(browser) as tools:
        await tools.call("Page.navigate", url=f"{base}/hub/spawn-pending/ada")
        shown = await tools.wait_for(
            "!document.getElementById('failure').hidden"
            " && document.getElementById('failure-message').textContent"
        )
        assert shown == reason
        retry = await tools.evaluate(
            "Array.from(document.querySelectorAll('#failure form'),"
            " f => [f.method, new URL(f.action).pathname, f.elements['_xsrf'].value])"
        )
        assert retry == [["post", "/hub/spawn/ada", "token"]]
        assert await tools.evaluate("location.pathname") == "/hub/spawn-pending/ada"
        await tools.screenshot(tmp_path / "spawn-failed.png")
