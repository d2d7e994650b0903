"""Raw byte WebSocket relay (edge.websocket) against an aiohttp frame relay, side by side.

Peers, each in its own process next to one pod process: "direct" (no
proxy, the limit), "raw" (podgate's relay_websocket in a bare aiohttp app:
101 passthrough, then bytes), "edge" (the same relay behind podgate's
public app, edge.app, in proxy-only mode), "frame" (aiohttp
WebSocketResponse + ClientSession.ws_connect, a reader task per side, every
message decoded and re-encoded: what a proxy written the obvious way does). Figures per peer:

- round-trips/s of 100-byte binary messages, sequential, on one socket;
- bulk one-way MB/s of 64 KiB binary messages (browser -> pod);
- proxy memory per idle socket (KiB): proxy RSS growth over N idle sockets
  opened through it, divided by N (RSS from /proc, after a warm-up);
- held: how many of the N stayed open; fds left: proxy file descriptors
  still open 5 s after every socket was closed (0 means nothing leaked;
  the frame relay keeps each pod connection until aiohttp's 10 s close
  handshake timeout, as the idle pod never answers a close frame).

Usage: python bench/ws_relay_compare.py [--seconds 3] [--idle 2000] [--repeat 3]
       [--peers direct raw frame]
Every load is bounded by --seconds (max 20); the whole run by its repeats.
The machine is shared: read ratios from one run, never absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _run(main: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


# -- the pod: an aiohttp echo/sink server plus a cheap raw server for idle sockets ----


class _IdlePod(asyncio.Protocol):
    """Answers a WebSocket handshake with 101, then holds the socket and ignores frames."""

    def __init__(self) -> None:
        self._head = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._head is None:
            return
        self._head += data
        if b"\r\n\r\n" not in self._head:
            return
        key = b""
        for line in self._head.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        assert self._transport is not None
        self._transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self._head = None  # type: ignore[assignment]


async def _pod_echo(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def _pod_sink(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    received = 0
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            received += len(msg.data)
        elif msg.type == WSMsgType.TEXT:
            await ws.send_str(str(received))
    return ws


async def serve_pod() -> None:
    app = web.Application()
    app.router.add_get("/echo", _pod_echo)
    app.router.add_get("/sink", _pod_sink)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    loop = asyncio.get_running_loop()
    idle = await loop.create_server(_IdlePod, "127.0.0.1", 0, backlog=4096)
    print(f"PORTS {runner.addresses[0][1]} {idle.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


# -- the proxies -----------------------------------------------------------------------


def _raw_app(pod_port: int, idle_port: int) -> web.Application:
    from edge.headers import upstream_request_headers
    from edge.settings import EdgeSettings
    from edge.websocket.aiohttp_lane import relay_websocket
    from metrics import EdgeStats
    from routes import RouteSource, RouteTable

    table = RouteTable()
    table.add("/", f"http://127.0.0.1:{pod_port}", source=RouteSource.API)
    table.add("/idle", f"http://127.0.0.1:{idle_port}", source=RouteSource.API)
    settings = EdgeSettings()
    stats = EdgeStats()

    async def handle(request: web.Request) -> web.StreamResponse:
        route = table.longest_match(request.path)
        assert route is not None
        # The headers are passed, not kept in a local: a local would stay alive
        # (and cost memory) for as long as the socket is open.
        return await relay_websocket(
            request,
            route,
            route.target.base_path + request.path_qs,
            upstream_request_headers(
                request.headers,
                peer=request.remote,
                scheme="http",
                settings=settings,
                pod_token=None,
            ),
            stats,
            settings,
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


def _frame_app(pod_port: int, idle_port: int) -> web.Application:
    sessions: list[aiohttp.ClientSession] = []

    async def pump(src: Any, dst: Any) -> None:
        async for msg in src:
            if msg.type == WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await dst.send_str(msg.data)
            elif msg.type == WSMsgType.PING:
                await dst.ping(msg.data)
            elif msg.type == WSMsgType.PONG:
                await dst.pong(msg.data)
        await dst.close(code=src.close_code or 1000)

    async def handle(request: web.Request) -> web.StreamResponse:
        port = idle_port if request.path.startswith("/idle") else pod_port
        upstream = await sessions[0].ws_connect(
            f"http://127.0.0.1:{port}{request.path_qs}", autoping=False, max_msg_size=0
        )
        ws = web.WebSocketResponse(autoping=False, max_msg_size=0)
        await ws.prepare(request)
        back = asyncio.create_task(pump(upstream, ws))
        try:
            await pump(ws, upstream)
        finally:
            back.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await back
            await upstream.close()
        return ws

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0)
        sessions.append(aiohttp.ClientSession(connector=connector))
        yield
        await sessions[0].close()

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/{tail:.*}", handle)
    return app


def _edge_app(pod_port: int, idle_port: int) -> web.Application:
    """podgate's public app (edge.app) in proxy-only mode: routing, headers, then the relay."""
    from edge.app import build_public_app
    from edge.settings import EdgeSettings
    from metrics import EdgeStats
    from routes import RouteSource, RouteTable

    table = RouteTable()
    table.add("/", f"http://127.0.0.1:{pod_port}", source=RouteSource.API)
    table.add("/idle", f"http://127.0.0.1:{idle_port}", source=RouteSource.API)
    return build_public_app(
        table=table,
        settings=EdgeSettings(control_enabled=False),
        stats=EdgeStats(),
        sessions=None,
    )


async def serve_proxy(mode: str, pod_port: int, idle_port: int) -> None:
    builders = {"raw": _raw_app, "frame": _frame_app, "edge": _edge_app}
    app = builders[mode](pod_port, idle_port)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    print(f"PORTS {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


# -- the load ------------------------------------------------------------------------


class _IdleClient(asyncio.Protocol):
    def __init__(self, opened: asyncio.Future[bool]) -> None:
        self._opened = opened
        self.transport: asyncio.Transport | None = None
        self._head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(HANDSHAKE.format(path="/idle/x").encode())

    def data_received(self, data: bytes) -> None:
        self._head += data
        if not self._opened.done() and b"\r\n\r\n" in self._head:
            self._opened.set_result(self._head.startswith(b"HTTP/1.1 101"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._opened.done():
            self._opened.set_result(False)


async def round_trips(url: str, seconds: float) -> float:
    payload = b"m" * 100
    async with aiohttp.ClientSession() as session, session.ws_connect(url + "/echo") as ws:
        count = 0
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < deadline:
            await ws.send_bytes(payload)
            await ws.receive()
            count += 1
        return count / (time.perf_counter() - start)


async def bulk(url: str, seconds: float) -> float:
    block = b"b" * 65536
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url + "/sink", max_msg_size=0) as ws,
    ):
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            for _ in range(16):
                await ws.send_bytes(block)
        await ws.send_str("done")
        msg = await asyncio.wait_for(ws.receive(), 30)
        return int(msg.data) / (time.perf_counter() - start) / 1e6


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_idle(port: int, count: int, seconds: float) -> list[_IdleClient]:
    loop = asyncio.get_running_loop()
    clients: list[_IdleClient] = []
    deadline = time.perf_counter() + seconds
    for start in range(0, count, 200):  # in batches, so the listen backlog keeps up
        batch = []
        for _ in range(min(200, count - start)):
            opened: asyncio.Future[bool] = loop.create_future()
            _, client = await loop.create_connection(
                lambda f=opened: _IdleClient(f), "127.0.0.1", port
            )
            clients.append(client)
            batch.append(opened)
        remaining = max(0.1, deadline - time.perf_counter())
        results = await asyncio.wait_for(asyncio.gather(*batch), remaining)
        if not all(results):
            raise RuntimeError("an idle socket was refused")
    return clients


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def idle_memory(port: int, pid: int, count: int, seconds: float) -> tuple[float, int, int]:
    """(KiB per idle socket, sockets held open, proxy fds left over once all are closed)."""
    warm = await open_idle(port, 200, seconds)
    for c in warm:
        assert c.transport is not None
        c.transport.close()
    await asyncio.sleep(0.5)
    before, fds_before = rss_kib(pid), open_fds(pid)
    clients = await open_idle(port, count, seconds)
    await asyncio.sleep(1.0)
    after = rss_kib(pid)
    held = sum(1 for c in clients if c.transport is not None and not c.transport.is_closing())
    for c in clients:
        assert c.transport is not None
        c.transport.close()
    leftover = open_fds(pid) - fds_before
    for _ in range(50):  # up to 5 s for the proxy to see every close
        if leftover <= 0:
            break
        await asyncio.sleep(0.1)
        leftover = open_fds(pid) - fds_before
    return (after - before) / count, held, leftover


def _spawn(*args: str) -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORTS"):
        proc.kill()
        raise RuntimeError(f"{args[0]} did not start")
    return proc, [int(p) for p in line.split()[1:]]


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def measure(args: argparse.Namespace) -> None:
    seconds = min(args.seconds, 20.0)
    pod, (pod_port, idle_port) = _spawn("--role", "pod")
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for _ in range(args.repeat):
            for peer in args.peers:
                row = results.setdefault(
                    peer, {"rt": [], "bulk": [], "mem": [], "held": [], "fds": []}
                )
                proxy = None
                if peer == "direct":
                    port = pod_port
                else:
                    proxy, (port,) = _spawn(
                        "--role", "proxy", "--mode", peer, str(pod_port), str(idle_port)
                    )
                try:
                    url = f"http://127.0.0.1:{port}"
                    row["rt"].append(await round_trips(url, seconds))
                    row["bulk"].append(await bulk(url, seconds))
                    if proxy is not None:
                        per_socket, held, fds = await idle_memory(port, proxy.pid, args.idle, 20.0)
                        row["mem"].append(per_socket)
                        row["held"].append(held)
                        row["fds"].append(fds)
                finally:
                    if proxy is not None:
                        _stop(proxy)
    finally:
        _stop(pod)

    def med(peer: str, key: str) -> str:
        values = results[peer][key]
        return f"{statistics.median(values):,.1f}" if values else "-"

    print(f"\nmedians of {args.repeat} runs, {seconds:g} s loads, {args.idle} idle sockets")
    print(
        f"{'peer':8} {'round-trips/s':>14} {'bulk MB/s':>10} {'KiB/idle':>9} {'held':>6}"
        f" {'fds left':>8}"
    )
    for peer in args.peers:
        print(
            f"{peer:8} {med(peer, 'rt'):>14} {med(peer, 'bulk'):>10} "
            f"{med(peer, 'mem'):>9} {med(peer, 'held'):>6} {med(peer, 'fds'):>8}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=("bench", "pod", "proxy"), default="bench")
    parser.add_argument("--mode", choices=("raw", "frame", "edge"), default="raw")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--peers", nargs="+", default=["direct", "raw", "frame"])
    parser.add_argument("ports", nargs="*", type=int)
    args = parser.parse_args()
    if args.role == "pod":
        _run(serve_pod())
    elif args.role == "proxy":
        _run(serve_proxy(args.mode, *args.ports))
    else:
        _run(measure(args))


if __name__ == "__main__":
    main()
