"""Shared fixtures for the edge tests: real upstreams on 127.0.0.1:0 and a running public edge.

Upstreams echo back what they received (method, path, headers, body, which
connection it came on), and can stream downloads, count uploads, emit SSE,
answer slowly or refuse. `make_edge` builds the real public app around a
RouteTable the test fills and serves it on a real socket. Every fixture
stops what it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from edge.session import SessionCodec
from edge.settings import EdgeSettings
from metrics.edge_stats import EdgeStats
from routes import RouteTable

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

CHUNK = 64 * 1024


@dataclass
class UpstreamLog:
    """What an echo upstream saw: requests, the client ports they came from, live streams."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    peer_ports: list[int] = field(default_factory=list)
    streams_active: int = 0
    streams_cancelled: int = 0
    bytes_received: int = 0


@dataclass
class Upstream:
    url: str
    log: UpstreamLog
    server: TestServer


def _peer_port(request: web.BaseRequest) -> int:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return int(peer[1]) if peer else -1


def echo_app(log: UpstreamLog) -> web.Application:
    """An upstream whose behaviour the query string picks; plain requests are echoed as JSON.

    ?download=N[&chunked=1]  stream N bytes ("x" * N)
    ?upload=1                 count the request body as it streams, answer {"received": n}
    ?sse=N&interval=S         N server-sent events, S seconds apart
    ?forever=1                stream small chunks until the client goes away
    ?sleep=S                  wait S seconds before answering
    ?status=N                 answer with that status
    ?set_cookie=a,b           Set-Cookie a=1 and b=1
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        query = request.query
        log.peer_ports.append(_peer_port(request))
        if "sleep" in query:
            await asyncio.sleep(float(query["sleep"]))
        if "upload" in query:
            received = 0
            async for chunk in request.content.iter_any():
                received += len(chunk)
            log.bytes_received += received
            return web.json_response({"received": received})
        if "download" in query:
            return await _download(request, int(query["download"]), "chunked" in query)
        if "sse" in query:
            return await _sse(request, int(query["sse"]), float(query.get("interval", "0.05")))
        if "forever" in query:
            return await _forever(request, log)
        body = await request.read()
        record = {
            "method": request.method,
            "path": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body": body.decode("utf-8", "replace"),
            "peer_port": _peer_port(request),
        }
        log.requests.append(record)
        response = web.Response(
            status=int(query.get("status", "200")),
            text=json.dumps(record),
            content_type="application/json",
        )
        for name in filter(None, query.get("set_cookie", "").split(",")):
            response.set_cookie(name, "1", path="/")
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def _download(request: web.Request, size: int, chunked: bool) -> web.StreamResponse:
    response = web.StreamResponse()
    if chunked:
        response.enable_chunked_encoding()
    else:
        response.content_length = size
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    block = b"x" * CHUNK
    sent = 0
    while sent < size:
        piece = block[: min(CHUNK, size - sent)]
        await response.write(piece)
        sent += len(piece)
    await response.write_eof()
    return response


async def _sse(request: web.Request, count: int, interval: float) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for n in range(count):
        await response.write(f"data: event {n}\n\n".encode())
        await asyncio.sleep(interval)
    await response.write_eof()
    return response


async def _forever(request: web.Request, log: UpstreamLog) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    log.streams_active += 1
    try:
        for _ in range(2000):  # bounded: 2000 * 10 ms = 20 s at most
            await response.write(b"tick\n")
            await asyncio.sleep(0.01)
    except (asyncio.CancelledError, ConnectionResetError):
        log.streams_cancelled += 1
        raise
    finally:
        log.streams_active -= 1
    return response


async def start_upstream(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


async def _running_echo_upstream() -> AsyncIterator[Upstream]:
    log = UpstreamLog()
    server = await start_upstream(echo_app(log))
    try:
        yield Upstream(url=str(server.make_url("")).rstrip("/"), log=log, server=server)
    finally:
        await server.close()


@pytest.fixture
async def echo_upstream() -> AsyncIterator[Upstream]:
    async for upstream in _running_echo_upstream():
        yield upstream


@pytest.fixture
async def second_upstream() -> AsyncIterator[Upstream]:
    """Another echo upstream, for "never reaches the other user's pod" checks."""
    async for upstream in _running_echo_upstream():
        yield upstream


@pytest.fixture
def refused_url() -> str:
    """A loopback URL nothing listens on: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def silent_upstream() -> AsyncIterator[str]:
    """Accepts connections and reads, but never answers: for read timeouts."""
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


@pytest.fixture
def session_codec() -> Any:
    """The real SessionCodec (edge.session) with a test secret."""
    return SessionCodec(["test-secret-one"], max_age_seconds=3600)


@dataclass
class RunningEdge:
    url: str
    table: RouteTable
    stats: EdgeStats
    settings: EdgeSettings
    app: web.Application
    port: int
    server: Any = None  # edge.server.PublicServer

    @property
    def pool(self) -> Any:
        """The pod connection pool of the fast lane, which serves plain proxied requests."""
        return self.server.lane.pool


EdgeFactory = Callable[..., Awaitable[RunningEdge]]


@pytest.fixture
async def make_edge(session_codec: Any) -> AsyncIterator[EdgeFactory]:
    """Start the public edge on 127.0.0.1:0: `await make_edge(table=..., settings=..., hub=...)`."""
    from edge.app import build_public_app
    from edge.errors import PLAIN_LOOK
    from edge.hub_upstream import HubUpstream
    from edge.server import PublicServer, serve_public
    from podgate.hub_link import HubLink

    servers: list[PublicServer] = []
    links: list[HubLink] = []

    async def start(
        *,
        table: RouteTable | None = None,
        settings: EdgeSettings | None = None,
        hub: web.Application | None = None,
        sessions: Any = None,
    ) -> RunningEdge:
        table = table if table is not None else RouteTable()
        settings = settings or EdgeSettings()
        stats = EdgeStats()
        upstream = None
        if hub is not None:
            # Reached as the wiring reaches the control plane: over socketpairs.
            link = HubLink(hub, PLAIN_LOOK, settings.hub_prefix)
            await link.start()
            links.append(link)
            upstream = HubUpstream(link.connect)
        app = build_public_app(
            table=table,
            settings=settings,
            stats=stats,
            sessions=sessions if sessions is not None else session_codec,
            hub=upstream,
        )
        # Served as the wiring serves it: the fast lane in front, aiohttp behind it.
        server = await serve_public(app, "127.0.0.1", 0)
        servers.append(server)
        return RunningEdge(
            url=server.url,
            table=table,
            stats=stats,
            settings=settings,
            app=app,
            port=server.port,
            server=server,
        )

    try:
        yield start
    finally:
        for server in reversed(servers):
            await server.close()
        for link in links:
            await link.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A real HTTP client that keeps no cookies (tests send them explicitly)."""
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
    ) as session:
        yield session


async def raw_exchange(port: int, data: bytes, *, seconds: float = 5.0) -> bytes:
    """Send raw bytes to 127.0.0.1:port and read until the server closes (fails on a hang)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        chunks: list[bytes] = []
        async with asyncio.timeout(seconds):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.fixture
def raw_http() -> Callable[..., Awaitable[bytes]]:
    """`await raw_http(port, b"GET / HTTP/1.1...")`: raw bytes in, everything until close out."""
    return raw_exchange


@dataclass
class ScriptedPod:
    """A raw pod that answers each request with the bytes `answers[path]` (bytes or a list of
    (delay seconds, bytes) pieces, or a callable on the head); "close" in a path's answer list
    means: close the connection there. It records every request head and body it read."""

    url: str
    port: int
    answers: dict[str, Any] = field(default_factory=dict)
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    connections: int = 0


async def _serve_scripted(
    pod: ScriptedPod, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    pod.connections += 1
    try:
        for _ in range(1000):  # bounded: requests per connection
            head = await reader.readuntil(b"\r\n\r\n")
            pod.heads.append(head)
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            pod.bodies.append(await reader.readexactly(length) if length else b"")
            path = head.split(b" ", 2)[1].decode()
            answer = pod.answers.get(path.split("?", 1)[0], pod.answers.get("*"))
            if callable(answer):
                answer = answer(head)
            pieces = answer if isinstance(answer, list) else [(0.0, answer)]
            for delay, piece in pieces:
                if delay:
                    await asyncio.sleep(delay)
                if piece == "close":
                    return
                writer.write(piece)
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def scripted_pod() -> AsyncIterator[ScriptedPod]:
    """A raw-socket pod whose answers the test scripts (for framings aiohttp never sends)."""
    tasks: set[asyncio.Task[None]] = set()
    pod = ScriptedPod(url="", port=0)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await _serve_scripted(pod, reader, writer)
        finally:
            tasks.discard(task)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    pod.port = server.sockets[0].getsockname()[1]
    pod.url = f"http://127.0.0.1:{pod.port}"
    try:
        yield pod
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def read_response(
    reader: asyncio.StreamReader, *, head_request: bool = False
) -> tuple[int, bytes, bytes]:
    """One HTTP/1.1 response from a raw socket: (status, head, body); bounded by the caller."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    lower = head.lower()
    if head_request or status in (204, 304) or status < 200:
        return status, head, b""
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return status, head, body
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return status, head, await reader.readexactly(int(value))
    return status, head, await reader.read()


async def exchange(port: int, data: bytes) -> tuple[int, bytes]:
    """One request on a fresh connection: its status and body (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        async with asyncio.timeout(5):
            status, _, body = await read_response(reader)
        return status, body
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
