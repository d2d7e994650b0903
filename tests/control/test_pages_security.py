"""Security headers and static files, through a real aiohttp server and client.

A tiny hub-like app uses the real middleware and static routes: what a
browser receives is checked, for pages, raised error pages, JSON, event
streams and the static files.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from control.pages import (
    CONTENT_SECURITY_POLICY,
    add_static_routes,
    error_page,
    login_page,
    security_headers,
)
from control.pages.markup import STATIC_DIR

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


async def login(request: web.Request) -> web.Response:
    return web.Response(text=login_page(xsrf="t"), content_type="text/html")


async def forbidden(request: web.Request) -> web.Response:
    raise web.HTTPForbidden(text=error_page(403), content_type="text/html")


async def api(request: web.Request) -> web.Response:
    return web.json_response({"name": "ada"})


async def events(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b'data: {"progress": 50}\n\n')
    return response


async def cached_page(request: web.Request) -> web.Response:
    return web.Response(
        text=error_page(404), content_type="text/html", headers={"Cache-Control": "max-age=60"}
    )


@pytest.fixture
async def client(aiohttp_client: MakeClient) -> Client:
    app = web.Application(middlewares=[security_headers])
    app.router.add_get("/hub/login", login)
    app.router.add_get("/hub/forbidden", forbidden)
    app.router.add_get("/hub/api/user", api)
    app.router.add_get("/hub/api/progress", events)
    app.router.add_get("/hub/cached", cached_page)
    add_static_routes(app)
    return await aiohttp_client(app)


async def test_html_pages_carry_every_security_header(client: Client) -> None:
    response = await client.get("/hub/login")
    assert response.status == 200
    assert response.content_type == "text/html"
    for name, value in PAGE_HEADERS.items():
        assert response.headers[name] == value
    assert "<form" in await response.text()


async def test_raised_error_pages_are_hardened_too(client: Client) -> None:
    response = await client.get("/hub/forbidden")
    assert response.status == 403
    assert "You are not allowed to do that." in await response.text()
    for name, value in PAGE_HEADERS.items():
        assert response.headers[name] == value


async def test_a_handlers_own_cache_header_wins(client: Client) -> None:
    response = await client.get("/hub/cached")
    assert response.headers["Cache-Control"] == "max-age=60"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


async def test_json_and_event_streams_are_left_alone(client: Client) -> None:
    response = await client.get("/hub/api/user")
    assert await response.json() == {"name": "ada"}
    assert "Content-Security-Policy" not in response.headers
    assert "Cache-Control" not in response.headers
    stream = await client.get("/hub/api/progress")
    assert stream.content_type == "text/event-stream"
    assert "Content-Security-Policy" not in stream.headers
    line = await stream.content.readline()
    assert json.loads(line.decode().removeprefix("data: ")) == {"progress": 50}
    stream.release()


async def test_unknown_routes_answer_404_not_500(client: Client) -> None:
    response = await client.get("/hub/nowhere")
    assert response.status == 404


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("spawn.js", "text/javascript"),
        ("podgate.css", "text/css"),
        ("podgate.svg", "image/svg+xml"),
    ],
)
async def test_static_files_are_served_with_their_type_and_a_cache_lifetime(
    client: Client, name: str, content_type: str
) -> None:
    response = await client.get(f"/hub/static/{name}?v=abc")
    assert response.status == 200
    assert response.content_type == content_type
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert await response.read() == (STATIC_DIR / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/hub/static/missing.js",
        "/hub/static/..%2Fmarkup.py",
        "/hub/static/../markup.py",
        "/hub/static/%2e%2e/security.py",
        "/hub/static/",
    ],
)
async def test_static_serves_nothing_but_its_files(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.status == 404
    assert b"import" not in await response.read()


async def test_every_static_url_in_a_page_resolves(client: Client) -> None:
    source = await (await client.get("/hub/login")).text()
    urls = {"/hub/static/" + part.split('"', 1)[0] for part in source.split('"/hub/static/')[1:]}
    assert len(urls) >= 2
    for url in urls:
        assert (await client.get(url)).status == 200, url
