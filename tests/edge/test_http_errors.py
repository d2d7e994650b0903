"""What a browser sees when a pod cannot answer: 503 page, 504, 502; and what is counted."""

from __future__ import annotations

import asyncio

from edge.settings import EdgeSettings, UpstreamSettings
from routes import RouteSource, RouteTable

PROXY_ONLY = EdgeSettings(control_enabled=False)


def api_table(url: str) -> RouteTable:
    table = RouteTable()
    table.add("/", url, source=RouteSource.API)
    return table


async def test_refused_upstream_is_503_with_a_clear_page(make_edge, refused_url, client) -> None:
    edge = await make_edge(table=api_table(refused_url), settings=PROXY_ONLY)
    async with client.get(f"{edge.url}/user/x/tree") as response:
        assert response.status == 503
        assert response.content_type == "text/html"
        text = await response.text()
    assert "503" in text and "not running" in text
    assert edge.stats.upstream_errors["refused"] == 1
    assert edge.stats.requests[("GET", 503, "api")] == 1


async def test_silent_upstream_is_504(make_edge, silent_upstream, client) -> None:
    settings = EdgeSettings(control_enabled=False, upstream=UpstreamSettings(read_timeout=0.3))
    edge = await make_edge(table=api_table(silent_upstream), settings=settings)
    async with asyncio.timeout(5), client.get(f"{edge.url}/slow") as response:
        assert response.status == 504
        assert "took too long" in await response.text()
    assert edge.stats.upstream_errors["timeout"] == 1


async def test_garbage_from_upstream_is_502(make_edge, client) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"this is not http\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        edge = await make_edge(table=api_table(f"http://127.0.0.1:{port}"), settings=PROXY_ONLY)
        async with client.get(f"{edge.url}/x") as response:
            assert response.status == 502
        assert edge.stats.upstream_errors["protocol"] == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_upstream_closing_before_answering_is_503(make_edge, client) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        edge = await make_edge(table=api_table(f"http://127.0.0.1:{port}"), settings=PROXY_ONLY)
        async with client.post(f"{edge.url}/x", data=b"payload") as response:
            assert response.status == 503
        assert edge.stats.upstream_errors["reset"] == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_edge_keeps_serving_after_errors(
    make_edge, refused_url, echo_upstream, client
) -> None:
    table = api_table(refused_url)
    table.add("/ok", echo_upstream.url, source=RouteSource.API)
    edge = await make_edge(table=table, settings=PROXY_ONLY)
    for _ in range(5):
        async with client.get(f"{edge.url}/dead") as response:
            assert response.status == 503
    async with client.get(f"{edge.url}/ok/x") as response:
        assert response.status == 200
