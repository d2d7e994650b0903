"""Pod failures in the fast lane: error pages before the head, cut-off connections after it.

503 for a refused or reset pod, 504 for a silent one, 502 for nonsense; a stale
pooled connection is retried once for a bodiless idempotent request and never
for one with a body; a failure mid-body shows as a truncation; every failure is
counted as the aiohttp path counts it.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from edge.settings import EdgeSettings, UpstreamSettings
from routes import RouteSource, RouteTable
from tests.edge.conftest import read_response

PROXY_ONLY = EdgeSettings(control_enabled=False)


def api_table(url: str) -> RouteTable:
    table = RouteTable()
    table.add("/", url, source=RouteSource.API)
    return table


async def test_refused_pod_is_a_503_page(make_edge, refused_url, client) -> None:
    edge = await make_edge(table=api_table(refused_url), settings=PROXY_ONLY)
    for _ in range(2):  # the browser connection stays usable after an error page
        async with client.get(f"{edge.url}/x") as response:
            assert response.status == 503
            assert "not running" in await response.text()
            assert response.headers["Content-Type"].startswith("text/html")
    assert edge.stats.upstream_errors["refused"] == 2
    assert edge.stats.requests[("GET", 503, "api")] == 2
    assert edge.server.lane.handed_over == 0


async def test_silent_pod_is_a_504_page(make_edge, silent_upstream, client) -> None:
    settings = EdgeSettings(control_enabled=False, upstream=UpstreamSettings(read_timeout=0.3))
    edge = await make_edge(table=api_table(silent_upstream), settings=settings)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with client.get(f"{edge.url}/x") as response:
        assert response.status == 504
    assert 0.25 < loop.time() - started < 3
    assert edge.stats.upstream_errors["timeout"] == 1
    assert edge.pool.idle_count() == 0


async def test_slow_but_steady_pod_is_not_timed_out(make_edge, scripted_pod, client) -> None:
    # Each gap is well inside the timeout, the whole answer well beyond it.
    settings = EdgeSettings(control_enabled=False, upstream=UpstreamSettings(read_timeout=0.45))
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"
    scripted_pod.answers["*"] = [(0.15, head)] + [(0.15, b"x")] * 6
    edge = await make_edge(table=api_table(scripted_pod.url), settings=settings)
    async with client.get(f"{edge.url}/x") as response:
        assert await response.read() == b"xxxxxx"
    assert edge.stats.upstream_errors["timeout"] == 0


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 2xx OK\r\n\r\n", id="bad status"),
        pytest.param(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", id="bad header"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", id="two lengths"
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", id="chunked not last"
        ),
        pytest.param(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", id="unasked 101"),
        pytest.param(b"SSH-2.0-OpenSSH\r\n\r\n", id="not http"),
    ],
)
async def test_garbage_from_the_pod_is_a_502_page(make_edge, scripted_pod, client, answer) -> None:
    scripted_pod.answers["*"] = answer
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    async with client.get(f"{edge.url}/x") as response:
        assert response.status == 502
    assert edge.stats.upstream_errors["protocol"] == 1


async def test_pod_closing_before_answering_is_a_503(make_edge, scripted_pod, client) -> None:
    scripted_pod.answers["*"] = [(0.0, "close")]
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    async with client.get(f"{edge.url}/x") as response:
        assert response.status == 503
    assert edge.stats.upstream_errors["reset"] == 1


async def test_pod_dying_mid_body_truncates_what_the_browser_gets(
    make_edge, scripted_pod, client
) -> None:
    scripted_pod.answers["*"] = [
        (0.0, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789"),
        (0.05, "close"),
    ]
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    async with client.get(f"{edge.url}/x") as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert edge.stats.upstream_errors["reset"] == 1
    assert edge.stats.requests[("GET", 200, "api")] == 1


async def test_bad_chunk_framing_mid_body_truncates(make_edge, scripted_pod, client) -> None:
    scripted_pod.answers["*"] = [
        (0.0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
        (0.05, b"zz\r\nnot hex\r\n"),
    ]
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    async with client.get(f"{edge.url}/x") as response:
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert edge.stats.upstream_errors["protocol"] == 1


async def test_stale_pooled_connection_is_retried_once_for_a_get(make_edge, scripted_pod) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    calls: list[bytes] = []

    def answer(head: bytes) -> list[tuple[float, bytes | str]]:
        # The second request finds the pooled connection dead, as after a pod's idle timeout.
        calls.append(head)
        return [(0.0, "close")] if len(calls) == 2 else [(0.0, ok)]

    scripted_pod.answers["*"] = answer
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    try:
        async with asyncio.timeout(5):
            writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader))[::2] == (200, b"ok")
            writer.write(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader))[::2] == (200, b"ok")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert len(calls) == 3 and scripted_pod.connections == 2
    assert edge.stats.upstream_errors["reset"] == 0
    assert edge.stats.requests[("GET", 200, "api")] == 2


async def test_pooled_connection_reset_under_a_post_is_not_retried(make_edge, scripted_pod) -> None:
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    calls: list[bytes] = []

    def answer(head: bytes) -> list[tuple[float, bytes | str]]:
        calls.append(head)
        return [(0.0, first)] if len(calls) == 1 else [(0.0, "close")]

    scripted_pod.answers["*"] = answer
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    try:
        async with asyncio.timeout(5):
            writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader))[0] == 200
            writer.write(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ndata")
            assert (await read_response(reader))[0] == 503
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert len(calls) == 2  # sent once, never replayed
    assert edge.stats.upstream_errors["reset"] == 1


async def test_browser_hanging_up_mid_download_closes_the_pod_connection(
    make_edge, echo_upstream
) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    writer.write(b"GET /f?forever=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(5):
        await reader.readuntil(b"tick")
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    for _ in range(100):  # bounded: up to ~2 s
        if echo_upstream.log.streams_active == 0 and edge.stats.requests:
            break
        await asyncio.sleep(0.02)
    assert echo_upstream.log.streams_cancelled == 1
    assert edge.stats.requests[("GET", 499, "api")] == 1
    assert edge.pool.idle_count() == 0


async def test_pod_not_accepting_connections_is_a_504_after_the_connect_timeout(
    make_edge, client
) -> None:
    import socket

    # A listener whose accept queue is full and never drained: new SYNs go unanswered.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        await asyncio.sleep(0.1)
        settings = EdgeSettings(
            control_enabled=False, upstream=UpstreamSettings(connect_timeout=0.3)
        )
        edge = await make_edge(table=api_table(f"http://127.0.0.1:{port}"), settings=settings)
        async with client.get(f"{edge.url}/x") as response:
            assert response.status == 504
        assert edge.stats.upstream_errors["timeout"] == 1
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_pod_answering_before_the_whole_body_ends_the_browser_connection(make_edge) -> None:
    """The rest of the body cannot be told from a next request: answer, then close."""

    async def early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig")
            await writer.drain()
            await reader.read()  # until the edge closes this connection
        finally:
            writer.close()

    server = await asyncio.start_server(early, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        edge = await make_edge(table=api_table(f"http://127.0.0.1:{port}"), settings=PROXY_ONLY)
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        try:
            writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"a" * 50)
            async with asyncio.timeout(5):
                status, head, body = await read_response(reader)
                assert (status, body) == (413, b"big")
                assert b"connection: close" in head.lower()
                writer.write(b"GET /not-a-request HTTP/1.1\r\nHost: x\r\n\r\n")
                assert await reader.read() == b""  # closed: the leftover body is never parsed
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        assert edge.stats.requests[("POST", 413, "api")] == 1
    finally:
        server.close()
        await server.wait_closed()
