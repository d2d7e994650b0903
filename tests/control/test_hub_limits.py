"""The hub's outer limits in a real podgate: oversized forms, the pages' security headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from hub_kit import Browser
from yarl import URL

MakePodgate = Callable[..., Awaitable[Any]]

FORM_TYPE = "application/x-www-form-urlencoded"
PAGE_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options")


async def _raw_exchange(base_url: str, head: str, body: bytes, seconds: float = 3.0) -> bytes:
    """Send a request head and part of a body on a plain socket; what comes back in time."""
    url = URL(base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), seconds)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/hub/login", b"413 Request Entity Too Large"),
        ("/hub/logout", b"413 Request Entity Too Large"),
        ("/hub/spawn", b"403 Forbidden"),  # signed out: refused before the size even matters
    ],
)
async def test_a_declared_huge_form_is_refused_before_it_is_sent(
    make_podgate: MakePodgate, path: str, status: bytes
) -> None:
    pg = await make_podgate()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: podgate\r\nContent-Type: {FORM_TYPE}\r\n"
        "Content-Length: 100000000\r\n\r\n"
    )
    # Only a kilobyte of the announced 100 MB is sent: the answer must not wait for the rest.
    answer = await _raw_exchange(pg.public_url, head, b"username=" + b"a" * 1024)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 " + status
    assert b"Content-Type: text/html" in rest
    assert b"Content-Security-Policy" in rest
    assert (b"larger than any form" in rest) == status.startswith(b"413")


async def test_a_chunked_huge_form_is_refused_once_past_the_cap(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate()

    async def body() -> AsyncIterator[bytes]:
        yield b"username=ada&password="
        for _ in range(40):  # 40 x 16 KiB: ten times the cap
            yield b"x" * 16384

    async with Browser(pg.public_url) as browser:
        response = await browser.session.post(
            browser.url("/hub/login"), data=body(), headers={"Content-Type": FORM_TYPE}
        )
        async with response:
            page = await response.text()
    assert response.status == 413
    assert "larger than any form" in page
    assert "Content-Security-Policy" in response.headers


async def test_a_form_under_the_cap_is_read_normally(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    async with Browser(pg.public_url) as browser:
        token = await browser.xsrf("/hub/login")
        form = {"username": "ada", "password": "x" * 50_000, "_xsrf": token}
        response = await browser.post("/hub/login", form, allow_redirects=False)
    assert response.status == 403  # a wrong password, not a refused form


async def test_hub_pages_carry_the_security_headers(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    async with Browser(pg.public_url) as browser:
        pages = [await browser.get("/hub/login")]
        await browser.login("ada", next_url="/hub/home")
        pages.append(await browser.get("/hub/home"))
        pages.append(await browser.get("/hub/spawn/bob"))  # a 403 page
        pages.append(await browser.get("/hub/no-such-page"))  # a 404 page
        pages.append(await browser.get("/hub/spawn/ada"))  # the Start page
        pg.cluster.kubelet.set_paused(True)  # the start stays under way: its page is shown
        try:
            pages.append(await browser.get((await browser.start("ada")).headers["Location"]))
        finally:
            pg.cluster.kubelet.set_paused(False)
        await browser.progress("ada", seconds=15)
    assert [p.status for p in pages] == [200, 200, 403, 404, 200, 200]
    for page in pages:
        assert page.headers["Content-Type"].startswith("text/html"), page.url
        for name in PAGE_HEADERS:
            assert name in page.headers, (page.url, name)
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
