"""The edge's own error pages in a podgate with the control plane: the hub's look and a way back.

A real podgate (hub_kit) with config routes to a dead address, a pod that
never answers and one that answers garbage, so 503, 504 and 502 come from
the edge itself, through the fast lane (a plain GET) and through aiohttp's
side (a chunked POST); 403 and 404 come from its routing. Each page is the
hub's layout with the hub's Content-Security-Policy (no inline script or
style), its stylesheet loads, and it offers a way back.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from hub_kit import Browser

from control.pages import CONTENT_SECURITY_POLICY
from podgate.assembly import Podgate

MakePodgate = Callable[..., Awaitable[Podgate]]
STYLESHEET = re.compile(r'<link rel="stylesheet" href="(/hub/static/podgate\.css\?v=\w+)">')


@pytest.fixture
def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
async def odd_pods() -> AsyncIterator[tuple[str, str]]:
    """(a pod that never answers, a pod that answers garbage)."""
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"this is not http\r\n\r\n")
        await writer.drain()
        writer.close()

    servers = [await asyncio.start_server(h, "127.0.0.1", 0) for h in (silent, garbage)]
    try:
        ports = [s.sockets[0].getsockname()[1] for s in servers]
        yield f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
    finally:
        for writer in writers:
            writer.close()
        for server in servers:
            server.close()
            await server.wait_closed()


async def _chunked(body: bytes) -> AsyncIterator[bytes]:
    """A generator body goes chunked: aiohttp's side of the edge, not the fast lane."""
    yield body


def check_hub_look(page: str, headers: Any) -> None:
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert headers["X-Frame-Options"] == "DENY"
    assert STYLESHEET.search(page), page
    assert '<header class="bar">' in page and '<main class="card">' in page
    assert "<script" not in page and "style=" not in page and "<style" not in page


async def test_edge_error_pages_wear_the_hub_look_with_a_way_back(
    make_podgate: MakePodgate, dead_url: str, odd_pods: tuple[str, str]
) -> None:
    silent, garbage = odd_pods
    routes = [
        {"path": "/dead", "target": dead_url},
        {"path": "/slow", "target": silent},
        {"path": "/garbage", "target": garbage},
    ]
    pg = await make_podgate({"routes": routes, "edge": {"upstream_timeout": 0.5}})
    base = pg.public_url.rstrip("/")
    async with aiohttp.ClientSession() as client:
        for path, status, words in [
            ("/dead/x", 503, "not running"),
            ("/slow/x", 504, "took too long"),
            ("/garbage/x", 502, "could not understand"),
        ]:
            for method, body in (("GET", None), ("POST", b"x" * 10)):
                data = _chunked(body) if body else None
                async with client.request(method, base + path, data=data) as response:
                    page = await response.text()
                    assert response.status == status, (method, path, page)
                    check_hub_look(page, response.headers)
                    assert words in page
                    assert '<a class="button button-primary" href="">Try again</a>' in page
                    assert '<a class="button" href="/hub/home">Home</a>' in page
                    if status == 503:
                        assert response.headers["Retry-After"] == "2"
                        assert '<meta http-equiv="refresh" content="2">' in page

        async with client.get(f"{base}/hub/no-such-page") as response:
            page = await response.text()
            assert response.status == 404
            check_hub_look(page, response.headers)
            assert '<a class="button" href="/hub/home">Home</a>' in page
        stylesheet = STYLESHEET.search(page)
        assert stylesheet
        async with client.get(base + stylesheet.group(1)) as response:
            assert response.status == 200
            assert response.content_type == "text/css"

    async with Browser(base) as bob:
        assert (await bob.start_server("bob"))[-1].get("ready")
    async with Browser(base) as ada:
        assert (await ada.login("ada")).status == 200
        response = await ada.get("/user/bob/tree")
        page = await response.text()
        assert response.status == 403
        check_hub_look(page, response.headers)
        assert "belongs to another user" in page
        assert '<a class="button" href="/hub/home">Home</a>' in page
