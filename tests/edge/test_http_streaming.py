"""Bodies stream through the edge both ways: large, chunked, SSE, with flat memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp

from edge.settings import EdgeSettings
from routes import RouteSource, RouteTable

PROXY_ONLY = EdgeSettings(control_enabled=False)
MIB = 1024 * 1024
BIG = 64 * MIB
# A proxy that buffered a 64 MiB body whole would grow by about that much.
RSS_ALLOWANCE = 12 * MIB


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRss:
    """Samples this process's RSS every few ms while a transfer runs."""

    def __init__(self) -> None:
        self.baseline = rss_bytes()
        self.peak = self.baseline
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        for _ in range(20_000):  # bounded: ~100 s at most
            self.peak = max(self.peak, rss_bytes())
            await asyncio.sleep(0.005)

    async def __aenter__(self) -> PeakRss:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def api_table(url: str) -> RouteTable:
    table = RouteTable()
    table.add("/", url, source=RouteSource.API)
    return table


async def test_64_mib_download_streams_with_flat_memory(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    received = 0
    async with PeakRss() as rss, client.get(f"{edge.url}/big?download={BIG}") as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(BIG)
        async for chunk in response.content.iter_any():
            received += len(chunk)
    assert received == BIG
    assert rss.growth < RSS_ALLOWANCE, rss.growth
    assert edge.stats.bytes_to_client == BIG


async def test_chunked_download_arrives_whole(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    size = 3 * MIB + 17
    async with client.get(f"{edge.url}/c?download={size}&chunked=1") as response:
        assert response.status == 200
        assert "Content-Length" not in response.headers
        assert response.headers["Transfer-Encoding"] == "chunked"
        body = await response.read()
    assert body == b"x" * size


async def _blocks(count: int, block: bytes) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield block


async def test_64_mib_upload_streams_with_flat_memory(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    block = b"u" * (256 * 1024)
    count = BIG // len(block)
    # A generator body goes out chunked; the edge re-frames it for the pod.
    upload = client.post(f"{edge.url}/up?upload=1", data=_blocks(count, block))
    async with PeakRss() as rss, upload as response:
        assert response.status == 200
        assert (await response.json())["received"] == BIG
    assert rss.growth < RSS_ALLOWANCE, rss.growth
    assert edge.stats.bytes_to_upstream == BIG


async def test_content_length_upload_arrives_whole(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    body = bytes(range(256)) * 4096  # 1 MiB with a Content-Length
    async with client.put(f"{edge.url}/up?upload=1", data=body) as response:
        assert (await response.json())["received"] == len(body)


async def test_server_sent_events_arrive_one_by_one(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    interval = 0.15
    arrivals: list[float] = []
    started = time.monotonic()
    async with client.get(f"{edge.url}/events?sse=4&interval={interval}") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        async with asyncio.timeout(10):
            async for line in response.content:
                if line.startswith(b"data:"):
                    arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 4
    # Each event is seen before the next is even produced, not all at the end.
    assert arrivals[0] < interval * 2
    assert arrivals[-1] - arrivals[0] >= interval * 2


async def test_client_hang_up_cancels_upstream_and_leaks_nothing(make_edge, echo_upstream) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    pool = edge.pool
    async with aiohttp.ClientSession() as session:
        response = await session.get(f"{edge.url}/live?forever=1")
        assert response.status == 200
        await response.content.readexactly(10)
        assert echo_upstream.log.streams_active == 1
        response.close()  # the browser goes away mid-stream
    for _ in range(100):  # bounded wait: up to ~2 s
        if echo_upstream.log.streams_active == 0:
            break
        await asyncio.sleep(0.02)
    assert echo_upstream.log.streams_active == 0
    assert echo_upstream.log.streams_cancelled == 1
    assert pool.idle_count() == 0  # the half-read connection was closed, not pooled
    # And the edge still serves the next request.
    async with aiohttp.ClientSession() as session, session.get(f"{edge.url}/next") as response:
        assert response.status == 200


async def test_pod_dying_mid_body_truncates_the_download(make_edge, client) -> None:
    # A pod that promises 1 MiB, sends a little, then drops the connection.
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + b"y" * 1000)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(half, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        edge = await make_edge(table=api_table(f"http://127.0.0.1:{port}"), settings=PROXY_ONLY)
        async with client.get(f"{edge.url}/x") as response:
            assert response.status == 200
            try:
                body = await response.read()
            except aiohttp.ClientPayloadError:
                body = b""
            assert len(body) < 1048576  # the browser can tell the body broke off
        assert sum(edge.stats.upstream_errors.values()) == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_client_hang_up_while_pod_is_silent_closes_the_pod_connection(
    make_edge, silent_upstream
) -> None:
    edge = await make_edge(table=api_table(silent_upstream), settings=PROXY_ONLY)
    pool = edge.pool
    _, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    writer.write(b"GET /waiting HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    for _ in range(100):  # bounded: wait until the edge has opened its pod connection
        if pool.opened:
            break
        await asyncio.sleep(0.01)
    assert pool.opened == 1
    writer.close()  # the browser gives up before the pod says anything
    await writer.wait_closed()
    for _ in range(100):
        if edge.stats.requests:
            break
        await asyncio.sleep(0.02)
    assert edge.stats.requests[("GET", 499, "api")] == 1
    assert pool.idle_count() == 0
