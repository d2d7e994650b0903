"""Streaming through the fast lane: backpressure from a slow browser, flat memory on big bodies.

A browser that stops reading stops the pod (bounded by socket buffers, not by the
body size); a 256 MiB download through an edge in its own process leaves that
process's peak RSS far below the body size.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from edge.settings import EdgeSettings
from routes import RouteSource, RouteTable

PROXY_ONLY = EdgeSettings(control_enabled=False)
REPO_ROOT = str(Path(__file__).resolve().parents[2])
MIB = 1024 * 1024
BLOCK = b"s" * MIB


@dataclass
class StreamingPod:
    url: str
    sent: int = 0  # body bytes the pod managed to hand to its socket


@pytest.fixture
async def streaming_pod() -> AsyncIterator[tuple[StreamingPod, int]]:
    """A raw pod that answers GET /<mib> with that many MiB, as fast as it is let to."""
    tasks: set[asyncio.Task[None]] = set()
    pod = StreamingPod(url="")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            size = int(head.split(b" ", 2)[1].strip(b"/")) * MIB
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            for _ in range(size // MIB):
                writer.write(BLOCK)
                await writer.drain()
                pod.sent += MIB
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            tasks.discard(task)
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pod.url = f"http://127.0.0.1:{port}"
    try:
        yield pod, port
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def api_table(url: str) -> RouteTable:
    table = RouteTable()
    table.add("/", url, source=RouteSource.API)
    return table


async def _drain_body(reader: asyncio.StreamReader, size: int) -> int:
    got = 0
    while got < size:
        chunk = await reader.read(4 * MIB)
        if not chunk:
            break
        got += len(chunk)
    return got


async def test_slow_browser_stops_the_pod(make_edge, streaming_pod) -> None:
    pod, _ = streaming_pod
    edge = await make_edge(table=api_table(pod.url), settings=PROXY_ONLY)
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    try:
        writer.write(b"GET /128 HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(20):
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(0.5)  # the browser reads nothing for a while
            held_back = pod.sent
            got = await _drain_body(reader, 128 * MIB)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    # Only socket buffers fill while nobody reads; never the whole body.
    print(f"pod got ahead by {held_back / MIB:.0f} MiB")
    assert held_back < 48 * MIB, held_back
    assert got == 128 * MIB
    assert edge.stats.bytes_to_client == 128 * MIB


_EDGE_PROCESS = """
import asyncio, sys
import uvloop
from edge.app import build_public_app
from edge.server import serve_public
from edge.settings import EdgeSettings
from metrics.edge_stats import EdgeStats
from routes import RouteSource, RouteTable

async def main():
    table = RouteTable()
    table.add("/", sys.argv[1], source=RouteSource.API)
    app = build_public_app(
        table=table, settings=EdgeSettings(control_enabled=False), stats=EdgeStats(), sessions=None
    )
    server = await serve_public(app, "127.0.0.1", 0)
    print(server.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.close()

uvloop.run(main())
"""


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_256_mib_download_keeps_the_edge_process_small(streaming_pod) -> None:
    pod, _ = streaming_pod
    root = REPO_ROOT
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _EDGE_PROCESS,
        pod.url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        async with asyncio.timeout(20):
            port = int(await process.stdout.readline())
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /256 HTTP/1.1\r\nHost: x\r\n\r\n")
            await reader.readuntil(b"\r\n\r\n")
            got = await _drain_body(reader, 256 * MIB)
            writer.close()
            peak = _peak_rss_mib(process.pid)
        assert got == 256 * MIB
        print(f"edge peak RSS {peak:.0f} MiB")
        assert peak < 100, f"edge peak RSS {peak:.0f} MiB"
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def test_slow_pod_holds_the_browser_upload_back(make_edge) -> None:
    """A pod that stops reading an upload stops the browser: the edge does not spool it."""
    pod_reading = asyncio.Event()
    received = 0

    async def pod(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await pod_reading.wait()
            while received < length:
                chunk = await reader.read(4 * MIB)
                if not chunk:
                    break
                received += len(chunk)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(pod, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        edge = await make_edge(table=api_table(f"http://127.0.0.1:{port}"), settings=PROXY_ONLY)
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        size = 128 * MIB
        writer.write(b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        sent = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):  # the pod reads nothing meanwhile
                while sent < size:
                    writer.write(BLOCK)
                    await writer.drain()
                    sent += MIB
        held_at = sent
        pod_reading.set()
        async with asyncio.timeout(20):
            while sent < size:
                writer.write(BLOCK)
                await writer.drain()
                sent += MIB
            head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        print(f"browser got ahead by {held_at / MIB:.0f} MiB")
        assert held_at < 48 * MIB, held_at
        assert head.startswith(b"HTTP/1.1 200") and received == size
        assert edge.stats.bytes_to_upstream == size
    finally:
        server.close()
        await server.wait_closed()


async def test_closing_the_server_lets_a_request_in_flight_finish(
    make_edge, echo_upstream, client
) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    pending = asyncio.ensure_future(client.get(f"{edge.url}/slow?sleep=0.3"))
    for _ in range(100):  # bounded: until the request is with the pod
        if echo_upstream.log.peer_ports:
            break
        await asyncio.sleep(0.01)
    await edge.server.close()
    response = await pending
    assert response.status == 200
    assert (await response.json())["path"] == "/slow?sleep=0.3"
    response.release()
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.get(f"{edge.url}/after")
