#!/usr/bin/env python3
"""Soak: podgate (edge and control plane) under a long, bounded, mixed load; back to baseline?

Starts kubesim as its own process (`podgate sim`, echo pods), podgate as
its own process (`podgate run --config`, control plane on that kubesim,
plus static routes), a static pod (nginx, or an aiohttp pod when nginx is
missing) and an aiohttp pod with WebSocket echo, SSE and streaming, then
drives a steady mixed load from one aiohttp client: small GETs and POSTs,
multi-MiB downloads and uploads, SSE streams, WebSockets that open, talk and
close, clients hanging up mid-stream, requests to a route whose pod refuses
connections, and users who log in, start their server (following its
progress), use it over HTTP and a WebSocket, stop it and see their route go,
again and again. It samples podgate's RSS, open descriptors and the
small-request p99 every few seconds, and writes a markdown report with a
PASS/FAIL verdict. `--edge-only` leaves the control plane out (proxy-only).

It must never run unbounded: every loop is bounded in time and count, every
request has a timeout, and every process it starts is stopped at the end,
also on Ctrl-C. It never talks to an address outside 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make `bench.harness` importable
    sys.path.insert(0, str(REPO_ROOT))

import yaml  # noqa: E402
from aiohttp import (  # noqa: E402
    ClientSession,
    ClientTimeout,
    ClientWSTimeout,
    TCPConnector,
    WSMsgType,
    web,
)

from bench.harness.control_plane import (  # noqa: E402
    COOKIE_SECRET,
    PASSWORD,
    UserRun,
    log_in_and_spawn,
    new_browser,
)
from bench.harness.procs import (  # noqa: E402
    Managed,
    free_port,
    rss_kib,
    start,
    wait_for_port,
)

BIG_BYTES = 4 * 1024 * 1024  # the streamed download and upload size
SSE_EVENTS = 10
WS_MESSAGES = 5
REQUEST_TIMEOUT = ClientTimeout(total=30, sock_connect=5)
WS_TIMEOUT = ClientWSTimeout(ws_receive=10, ws_close=10)

# Spawns and stops: this many users at a time, their names drawn in turn from
# a pool (a bounded user list, as a real hub has, so growth means a leak).
SPAWN_CONCURRENCY = 3
SPAWN_USER_POOL = 12
USER_GETS = 3

XSRF_FIELD = re.compile(r'name="_xsrf" value="([^"]+)"')

# A real API server deletes Events after --event-ttl (1 h by default); kubesim
# keeps them for ever, and podgate's event watch mirrors what the cluster
# holds. The soak plays the API server's part, compressed, so what it measures
# is podgate and not a cluster that never forgets.
EVENT_TTL = 30.0
EVENT_SWEEP_EVERY = 5.0

# Verdict margins: after the load stops, within these of the baseline.
RSS_MARGIN = 0.10
FD_MARGIN = 10
P99_FACTOR = 2.0


# ---------------------------------------------------------------- the pod


async def _pod_handle(request: web.Request) -> web.StreamResponse:
    """Dispatch on the last path segment, so any route prefix reaches the same pod."""
    what = request.path.rstrip("/").rsplit("/", 1)[-1]
    if what == "ws":
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws
    if what == "sse":
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(SSE_EVENTS):
            await resp.write(f"data: {i}\n\n".encode())
            await asyncio.sleep(0.05)
        await resp.write_eof()
        return resp
    if what == "big":
        resp = web.StreamResponse(headers={"Content-Length": str(BIG_BYTES)})
        await resp.prepare(request)
        chunk = b"\0" * 65536
        for _ in range(BIG_BYTES // len(chunk)):
            await resp.write(chunk)
        await resp.write_eof()
        return resp
    if what == "upload":
        received = 0
        async for data in request.content.iter_any():
            received += len(data)
        return web.Response(text=str(received))
    await request.read()
    return web.Response(text="p" * 99 + "\n")


def serve_pod(port: int) -> None:
    app = web.Application(client_max_size=0)
    app.router.add_route("*", "/{tail:.*}", _pod_handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# ---------------------------------------------------------------- processes


@dataclass(frozen=True)
class KubeAccess:
    """Where kubesim's API is and its token, read from the kubeconfig it wrote."""

    server: str
    token: str

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeAccess:
        document = yaml.safe_load(path.read_text())
        return cls(
            server=document["clusters"][0]["cluster"]["server"],
            token=document["users"][0]["user"]["token"],
        )


@dataclass
class Stack:
    """podgate and the pods behind it, all separate processes."""

    workdir: Path
    processes: list[Managed] = field(default_factory=list)
    podgate: Managed | None = None
    base: str = ""
    static_kind: str = ""
    control: bool = False  # podgate runs its control plane on a kubesim process
    dead_socket: socket.socket | None = None  # holds the refusing port (bound, never listening)
    kube: KubeAccess | None = None  # the kubesim API, when there is a control plane

    def stop(self) -> None:
        for proc in reversed(self.processes):
            with contextlib.suppress(Exception):
                proc.stop()
        if self.dead_socket is not None:
            self.dead_socket.close()


def refusing_port(stack: Stack) -> int:
    """A port that refuses connections for the whole soak.

    Bound but never listening: a connection is refused, and no other program
    on this shared machine can be given the port meanwhile (a merely free
    port was, once, and answered 404 where a refusal was expected).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    stack.dead_socket = sock
    return int(sock.getsockname()[1])


def _started(stack: Stack, proc: Managed, port: int) -> None:
    stack.processes.append(proc)
    if not wait_for_port(port, timeout=20, proc=proc):
        raise RuntimeError(f"{proc.name} did not start: {proc.log_tail()}")


def nginx_path() -> str | None:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    return found if os.access(found, os.X_OK) else None


def _start_nginx_pod(stack: Stack, port: int) -> Managed:
    root = stack.workdir / "www"
    (root / "st").mkdir(parents=True, exist_ok=True)
    (root / "st" / "small").write_text("p" * 99 + "\n")
    with open(root / "st" / "big", "wb") as big:
        big.truncate(BIG_BYTES)  # sparse: reads as zeros
    temp = stack.workdir / "nginx-temp"
    temp.mkdir(exist_ok=True)
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf = stack.workdir / "nginx.conf"
    conf.write_text(
        f"""{user}daemon off;
pid {stack.workdir}/nginx.pid;
error_log {stack.workdir}/nginx-error.log warn;
worker_processes 1;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {temp}/body;
  proxy_temp_path {temp}/proxy;
  fastcgi_temp_path {temp}/fastcgi;
  uwsgi_temp_path {temp}/uwsgi;
  scgi_temp_path {temp}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    location / {{ }}
  }}
}}
"""
    )
    cmd = [nginx_path() or "nginx", "-e", str(stack.workdir / "nginx-error.log"), "-c", str(conf)]
    return start("pod-nginx", cmd, log_dir=stack.workdir)


def _start_aiohttp_pod(stack: Stack, name: str, port: int) -> Managed:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--pod", str(port)]
    return start(name, cmd, log_dir=stack.workdir)


def _podgate_cmd() -> list[str]:
    exe = shutil.which("podgate")
    return [exe] if exe else [sys.executable, "-m", "podgate.cli"]


_ENV = {"PYTHONPATH": str(REPO_ROOT), "NO_PROXY": "127.0.0.1,localhost"}


def _start_kubesim(stack: Stack) -> Path:
    """kubesim alone (`podgate sim`, plain http); its kubeconfig once it listens."""
    port = free_port()
    kubeconfig = stack.workdir / "kubesim.kubeconfig"
    cmd = [*_podgate_cmd(), "sim", "--listen", f"127.0.0.1:{port}", "--plain-http"]
    proc = start(
        "kubesim", [*cmd, "--kubeconfig", str(kubeconfig)], log_dir=stack.workdir, env=_ENV
    )
    stack.processes.append(proc)
    # The kubeconfig is written just before kubesim says it listens.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.alive():
        if "kubesim listening" in proc.log_tail() and kubeconfig.exists():
            return kubeconfig
        time.sleep(0.05)
    raise RuntimeError(f"kubesim did not start: {proc.log_tail()}")


def _control_config(kubeconfig: Path) -> dict[str, object]:
    """The control plane's keys, as an operator would write them: echo pods on kubesim."""
    return {
        "cluster": {"kind": "kube", "kubeconfig": str(kubeconfig)},
        "auth": {"kind": "dummy", "password": PASSWORD},
        "session": {"cookie_secrets": [COOKIE_SECRET]},
        "spawner": {
            "namespace": "default",
            "image": "kubesim/echo",
            "jupyter_args": False,
            "readiness_path": None,
            "stop_grace_seconds": 2,
        },
    }


def _wait_ready(ops_port: int, proc: Managed, seconds: float = 30) -> None:
    """Until /readyz answers 200 (the pod watch has listed), as a load balancer waits."""
    url = f"http://127.0.0.1:{ops_port}/readyz"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.alive():
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"podgate did not turn ready: {proc.log_tail()}")


def start_stack(workdir: Path, *, use_nginx: bool = True, control: bool = True) -> Stack:
    """Start the pods (and kubesim), then podgate routing /st/, /app/ and /dead/ (a closed port)."""
    stack = Stack(workdir, control=control)
    try:
        static_port, app_port, dead_port = free_port(), free_port(), refusing_port(stack)
        if use_nginx and nginx_path():
            stack.static_kind = "nginx"
            _started(stack, _start_nginx_pod(stack, static_port), static_port)
        else:
            stack.static_kind = "aiohttp"
            _started(stack, _start_aiohttp_pod(stack, "pod-static", static_port), static_port)
        _started(stack, _start_aiohttp_pod(stack, "pod-app", app_port), app_port)
        port, ops_port = free_port(), free_port()
        config: dict[str, object] = {
            "listen": f"127.0.0.1:{port}",
            "ops_listen": f"127.0.0.1:{ops_port}",
            "log_level": "warning",
            "control": {"enabled": control},
            "routes": [
                {"path": "/st/", "target": f"http://127.0.0.1:{static_port}"},
                {"path": "/app/", "target": f"http://127.0.0.1:{app_port}"},
                {"path": "/dead/", "target": f"http://127.0.0.1:{dead_port}"},
            ],
        }
        if control:
            kubeconfig = _start_kubesim(stack)
            stack.kube = KubeAccess.from_kubeconfig(kubeconfig)
            config.update(_control_config(kubeconfig))
        conf = workdir / "podgate.yaml"
        conf.write_text(json.dumps(config, indent=2))  # JSON is YAML
        env = {**_ENV, "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(16)}
        cmd = [*_podgate_cmd(), "run", "--config", str(conf)]
        proc = start("podgate", cmd, log_dir=workdir, env=env)
        _started(stack, proc, port)
        _wait_ready(ops_port, proc)
        stack.podgate = proc
        stack.base = f"http://127.0.0.1:{port}"
    except BaseException:
        stack.stop()
        raise
    return stack


# ---------------------------------------------------------------- the load


@dataclass
class Tally:
    """What the load saw: counts per kind, errors per kind, small-request latencies."""

    done: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # small requests of this interval
    spawn_seconds: list[float] = field(default_factory=list)  # login to routed, per start
    next_user: int = 0  # the spawn pool's turn
    events_expired: int = 0  # Events deleted in the API server's stead (EVENT_TTL)

    def ok(self, kind: str) -> None:
        self.done[kind] = self.done.get(kind, 0) + 1

    def error(self, kind: str, what: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.error_samples) < 20:
            self.error_samples.append(f"{kind}: {what}")


@dataclass
class LoadKind:
    """One kind of request, repeated every `every` seconds by its own task."""

    name: str
    every: float
    once: Callable[[ClientSession, str, Tally], Awaitable[None]]


async def _small_get(session: ClientSession, base: str, tally: Tally) -> None:
    began = time.monotonic()
    async with session.get(f"{base}/st/small") as resp:
        body = await resp.read()
    tally.latencies.append(time.monotonic() - began)
    if resp.status != 200 or len(body) != 100:
        raise AssertionError(f"status {resp.status}, {len(body)} bytes")


async def _small_post(session: ClientSession, base: str, tally: Tally) -> None:
    began = time.monotonic()
    async with session.post(f"{base}/app/post", data=b"q" * 100) as resp:
        body = await resp.read()
    tally.latencies.append(time.monotonic() - began)
    if resp.status != 200 or len(body) != 100:
        raise AssertionError(f"status {resp.status}, {len(body)} bytes")


async def _download(session: ClientSession, base: str, tally: Tally) -> None:
    received = 0
    async with session.get(f"{base}/st/big") as resp:
        async for chunk in resp.content.iter_any():
            received += len(chunk)
    if resp.status != 200 or received != BIG_BYTES:
        raise AssertionError(f"status {resp.status}, {received} bytes")


async def _upload_body() -> AsyncIterator[bytes]:
    chunk = b"u" * 65536
    for _ in range(BIG_BYTES // len(chunk)):
        yield chunk


async def _upload(session: ClientSession, base: str, tally: Tally) -> None:
    async with session.post(f"{base}/app/upload", data=_upload_body()) as resp:
        text = await resp.text()
    if resp.status != 200 or text != str(BIG_BYTES):
        raise AssertionError(f"status {resp.status}, pod got {text[:40]!r}")


async def _sse(session: ClientSession, base: str, tally: Tally) -> None:
    events = 0
    async with session.get(f"{base}/app/sse") as resp:
        async for line in resp.content:
            events += line.startswith(b"data:")
    if resp.status != 200 or events != SSE_EVENTS:
        raise AssertionError(f"status {resp.status}, {events} events")


async def _websocket(session: ClientSession, base: str, tally: Tally) -> None:
    async with session.ws_connect(f"{base}/app/ws", timeout=WS_TIMEOUT) as ws:
        for i in range(WS_MESSAGES):
            await ws.send_str(f"m{i}")
            msg = await ws.receive(timeout=10)
            if msg.type is not WSMsgType.TEXT or msg.data != f"m{i}":
                raise AssertionError(f"echo {i}: {msg.type} {str(msg.data)[:40]}")


async def _hang_up(session: ClientSession, base: str, tally: Tally) -> None:
    """Read a little of a big download and an SSE stream, then drop the connection."""
    for path in ("/st/big", "/app/sse"):
        resp = await session.get(f"{base}{path}")
        try:
            if resp.status != 200:
                raise AssertionError(f"{path}: status {resp.status}")
            await resp.content.read(1024)
        finally:
            resp.close()  # closes the socket: podgate sees the client go mid-stream


async def _refused(session: ClientSession, base: str, tally: Tally) -> None:
    async with session.get(f"{base}/dead/x") as resp:
        await resp.read()
    if resp.status != 503:
        raise AssertionError(f"status {resp.status}, expected 503")


async def _use_and_stop(browser: ClientSession, base: str, name: str) -> None:
    """The user's pod answers over HTTP and a WebSocket; then stop it and see the route go."""
    prefix = f"{base}/user/{name}/"
    for i in range(USER_GETS):
        async with browser.get(f"{prefix}n{i}", allow_redirects=False) as resp:
            answer = await resp.json(content_type=None) if resp.status == 200 else None
        if answer is None or not str(answer.get("path", "")).startswith(f"/user/{name}/"):
            raise AssertionError(f"{name}: GET answered {resp.status}")
    async with browser.ws_connect(f"{prefix}ws", timeout=WS_TIMEOUT) as ws:
        for i in range(WS_MESSAGES):
            await ws.send_str(f"{name}-{i}")
            msg = await ws.receive(timeout=10)
            if msg.type is not WSMsgType.TEXT or msg.data != f"{name}-{i}":
                raise AssertionError(f"{name}: echo {i}: {msg.type} {str(msg.data)[:40]}")
    async with browser.get(f"{base}/hub/home") as home:
        match = XSRF_FIELD.search(await home.text())
    if match is None:
        raise AssertionError(f"{name}: no form token on /hub/home ({home.status})")
    form = {"_xsrf": match.group(1)}
    async with browser.post(f"{base}/hub/stop", data=form, allow_redirects=False) as resp:
        await resp.read()
    if resp.status != 303:
        raise AssertionError(f"{name}: stop answered {resp.status}")
    # Stopped: the next request goes to the spawn page, never to the old pod.
    location = ""
    for _ in range(100):  # 100 x 50 ms
        async with browser.get(prefix, allow_redirects=False) as resp:
            await resp.read()
            location = resp.headers.get("Location", "")
        if resp.status == 302 and location.startswith(f"/hub/spawn/{name}"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name}: still routed 5 s after stop ({resp.status} {location!r})")


async def _one_user(base: str, name: str, tally: Tally) -> None:
    async with new_browser() as browser:
        run = UserRun(name)
        await log_in_and_spawn(browser, base, run)
        if run.error is not None or run.routed_at is None:
            raise AssertionError(f"{name}: start: {run.error}")
        tally.spawn_seconds.append(run.routed_at - run.started)
        await _use_and_stop(browser, base, name)


async def _spawn_and_stop(session: ClientSession, base: str, tally: Tally) -> None:
    """SPAWN_CONCURRENCY users at once: log in, start, use, stop (each its own browser)."""
    names = []
    for _ in range(SPAWN_CONCURRENCY):
        names.append(f"soak{tally.next_user % SPAWN_USER_POOL:02d}")
        tally.next_user += 1
    outcomes = await asyncio.gather(
        *(_one_user(base, name, tally) for name in names), return_exceptions=True
    )
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    if failed:
        raise AssertionError("; ".join(f"{type(e).__name__}: {e}" for e in failed)[:300])


def load_kinds(control: bool = True) -> list[LoadKind]:
    """The mixed load; spawns and stops when podgate runs its control plane."""
    spawns = [LoadKind("spawn-stop", 2.0, _spawn_and_stop)] if control else []
    return [
        *spawns,
        LoadKind("small-get", 0.04, _small_get),
        LoadKind("small-post", 0.04, _small_post),
        LoadKind("download", 2.0, _download),
        LoadKind("upload", 2.0, _upload),
        LoadKind("sse", 1.0, _sse),
        LoadKind("websocket", 0.5, _websocket),
        LoadKind("hang-up", 3.0, _hang_up),
        LoadKind("refused", 2.0, _refused),
    ]


def _timestamp(value: str | None) -> float:
    if not value:
        return 0.0
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def expire_events(kube: KubeAccess, tally: Tally, until: float) -> None:
    """Every EVENT_SWEEP_EVERY s, delete Events last seen more than EVENT_TTL s ago."""
    url = f"{kube.server}/api/v1/namespaces/default/events"
    headers = {"Authorization": f"Bearer {kube.token}"}
    async with ClientSession(headers=headers, timeout=REQUEST_TIMEOUT) as api:
        for _ in range(int((until - time.monotonic()) / EVENT_SWEEP_EVERY) + 2):
            await asyncio.sleep(max(0.0, min(EVENT_SWEEP_EVERY, until - time.monotonic())))
            if time.monotonic() >= until:
                return
            try:
                async with api.get(url) as resp:
                    listed = await resp.json()
                cutoff = time.time() - EVENT_TTL
                for event in listed.get("items", []):
                    seen = event.get("lastTimestamp") or event["metadata"]["creationTimestamp"]
                    if _timestamp(seen) < cutoff:
                        name = event["metadata"]["name"]
                        async with api.delete(f"{url}/{name}") as resp:
                            if resp.status not in (200, 404):
                                raise AssertionError(f"delete event: {resp.status}")
                        tally.events_expired += 1
                tally.ok("event-ttl")
            except Exception as e:  # counted like any load error
                tally.error("event-ttl", f"{type(e).__name__}: {str(e)[:120]}")


async def _drive(
    kind: LoadKind, session: ClientSession, base: str, tally: Tally, until: float
) -> None:
    # Bounded by the deadline and by a count no rate could reach in the time.
    limit = int((until - time.monotonic()) / kind.every) + 2
    for _ in range(max(0, limit)):
        began = time.monotonic()
        if began >= until:
            return
        try:
            await asyncio.wait_for(kind.once(session, base, tally), 60)
            tally.ok(kind.name)
        except Exception as e:  # every failure is counted and reported
            tally.error(kind.name, f"{type(e).__name__}: {str(e)[:120]}")
        await asyncio.sleep(max(0.0, kind.every - (time.monotonic() - began)))


# ---------------------------------------------------------------- sampling


@dataclass
class Sample:
    t: float  # seconds since the load began
    rss_kib: int
    fds: int
    p99_ms: float | None
    requests: int
    latencies: list[float] = field(default_factory=list, repr=False)  # small requests, s


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def _sample(pid: int, began: float, tally: Tally) -> Sample:
    latencies, tally.latencies = tally.latencies, []
    value = p99(latencies)
    return Sample(
        t=time.monotonic() - began,
        rss_kib=rss_kib(pid),
        fds=open_fds(pid),
        p99_ms=None if value is None else value * 1000,
        requests=len(latencies),
        latencies=latencies,
    )


@dataclass
class SoakResult:
    seconds: float
    static_kind: str
    samples: list[Sample]
    baseline: Sample
    final: Sample
    tally: Tally
    podgate_alive: bool
    control: bool = False  # spawns and stops were part of the load

    @property
    def peak_rss_kib(self) -> int:
        return max(s.rss_kib for s in self.samples)

    @property
    def peak_fds(self) -> int:
        return max(s.fds for s in self.samples)

    def load_samples(self) -> list[Sample]:
        return [s for s in self.samples if s.requests > 0]

    def rss_slope_kib_per_min(self) -> float:
        """Least-squares slope of RSS over the second half of the load."""
        loaded = self.load_samples()
        half = [s for s in loaded if s.t >= loaded[-1].t / 2] if loaded else []
        if len(half) < 2:
            return 0.0
        mt = sum(s.t for s in half) / len(half)
        mr = sum(s.rss_kib for s in half) / len(half)
        var = sum((s.t - mt) ** 2 for s in half)
        if var == 0:
            return 0.0
        return sum((s.t - mt) * (s.rss_kib - mr) for s in half) / var * 60

    def first_last_p99(self) -> tuple[float | None, float | None]:
        """p99 (ms) of the first and the last stretch of the load after warm-up.

        A stretch is a tenth of the intervals (at least one): a single
        interval's p99 is a handful of requests, too noisy on a shared machine.
        """
        loaded = [s for s in self.load_samples() if s.t >= self.baseline.t]
        if not loaded:
            return None, None
        k = max(1, len(loaded) // 10)

        def stretch_p99(part: list[Sample]) -> float | None:
            value = p99([x for s in part for x in s.latencies])
            return None if value is None else value * 1000

        return stretch_p99(loaded[:k]), stretch_p99(loaded[-k:])

    def checks(self) -> dict[str, bool]:
        first, last = self.first_last_p99()
        return {
            "podgate still running": self.podgate_alive,
            "no unexpected errors": not self.tally.errors,
            f"RSS back within +{RSS_MARGIN:.0%} of baseline": (
                self.final.rss_kib <= self.baseline.rss_kib * (1 + RSS_MARGIN)
            ),
            f"fds back within +{FD_MARGIN} of baseline": (
                self.final.fds <= self.baseline.fds + FD_MARGIN
            ),
            f"p99 of the last stretch <= {P99_FACTOR:g}x the first": (
                first is not None and last is not None and last <= P99_FACTOR * first
            ),
        }

    @property
    def passed(self) -> bool:
        return all(self.checks().values())


async def soak(
    stack: Stack, *, seconds: float, warmup: float, sample_every: float, settle: float
) -> SoakResult:
    """Drive the load for `seconds`, then wait up to `settle` s for podgate to come back."""
    assert stack.podgate is not None
    pid = stack.podgate.pid
    tally = Tally()
    samples: list[Sample] = []
    began = time.monotonic()
    until = began + seconds
    connector = TCPConnector(limit=64)
    async with ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as session:
        drivers = [
            asyncio.create_task(_drive(k, session, stack.base, tally, until), name=k.name)
            for k in load_kinds(stack.control)
        ]
        if stack.kube is not None:
            drivers.append(
                asyncio.create_task(expire_events(stack.kube, tally, until), name="event-ttl")
            )
        baseline: Sample | None = None
        try:
            for _ in range(int(seconds / sample_every) + 2):
                await asyncio.sleep(max(0.0, min(sample_every, until - time.monotonic())))
                if time.monotonic() >= until or not stack.podgate.alive():
                    break
                samples.append(_sample(pid, began, tally))
                if baseline is None and samples[-1].t >= warmup:
                    baseline = samples[-1]
            await asyncio.wait_for(asyncio.gather(*drivers), timeout=90)
            if tally.latencies and stack.podgate.alive():  # the last, partial interval
                samples.append(_sample(pid, began, tally))
        finally:
            for task in drivers:
                task.cancel()
            await asyncio.gather(*drivers, return_exceptions=True)
    if not stack.podgate.alive():
        raise RuntimeError(f"podgate exited during the soak: {stack.podgate.log_tail()}")
    if baseline is None:
        baseline = samples[-1] if samples else _sample(pid, began, tally)
    # The load has stopped: give podgate a bounded time to let go of what it held.
    final = _sample(pid, began, tally)
    settle_until = time.monotonic() + settle
    for _ in range(int(settle / 0.5) + 1):
        if final.fds <= baseline.fds + FD_MARGIN and final.rss_kib <= baseline.rss_kib * (
            1 + RSS_MARGIN
        ):
            break
        if time.monotonic() >= settle_until:
            break
        await asyncio.sleep(0.5)
        final = _sample(pid, began, tally)
    samples.append(final)
    return SoakResult(
        seconds=seconds,
        static_kind=stack.static_kind,
        samples=samples,
        baseline=baseline,
        final=final,
        tally=tally,
        podgate_alive=stack.podgate.alive(),
        control=stack.control,
    )


def run_soak(
    *,
    seconds: float,
    warmup: float,
    sample_every: float,
    settle: float,
    use_nginx: bool = True,
    control: bool = True,
) -> SoakResult:
    """Start everything, soak, and stop everything (also on Ctrl-C or failure)."""
    with tempfile.TemporaryDirectory(prefix="podgate-soak-") as tmp:
        stack = start_stack(Path(tmp), use_nginx=use_nginx, control=control)
        try:
            return asyncio.run(
                soak(
                    stack,
                    seconds=seconds,
                    warmup=warmup,
                    sample_every=sample_every,
                    settle=settle,
                )
            )
        finally:
            stack.stop()


# ---------------------------------------------------------------- report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _spawn_lines(result: SoakResult) -> list[str]:
    times = result.tally.spawn_seconds
    if not times:
        return []
    ordered = sorted(times)
    median = ordered[len(ordered) // 2]
    worst = p99(times) or 0.0
    return [
        f"Starts: {len(times)} (each followed by use, stop and the route's removal); "
        f"login to routed p50 {median * 1000:.0f} ms, p99 {worst * 1000:.0f} ms. "
        f"Events deleted after {EVENT_TTL:g} s (the API server's event TTL, played by "
        f"the soak): {result.tally.events_expired}",
        "",
    ]


def report(result: SoakResult) -> str:
    first, last = result.first_last_p99()
    lines = [
        f"# podgate soak: {'PASS' if result.passed else 'FAIL'}",
        "",
        f"Load: {result.seconds / 60:.1f} min of mixed traffic "
        f"(static pod: {result.static_kind}; "
        f"{'control plane with spawns and stops' if result.control else 'edge only'}); "
        "baseline taken after warm-up, final after the load stopped.",
        "",
        "| figure | baseline | peak | final |",
        "| --- | --- | --- | --- |",
        f"| RSS (KiB) | {result.baseline.rss_kib} | {result.peak_rss_kib} "
        f"| {result.final.rss_kib} |",
        f"| open fds | {result.baseline.fds} | {result.peak_fds} | {result.final.fds} |",
        "",
        f"RSS slope over the second half: {result.rss_slope_kib_per_min():+.1f} KiB/min",
        "",
        f"Small-request p99 after warm-up: first stretch {_ms(first)}, "
        f"last stretch {_ms(last)} (a stretch is a tenth of the load, at least one interval)",
        "",
        *_spawn_lines(result),
        "| kind | done | errors |",
        "| --- | --- | --- |",
    ]
    names = [kind.name for kind in load_kinds(result.control)]
    for name in [*names, "event-ttl"] if result.control else names:
        lines.append(
            f"| {name} | {result.tally.done.get(name, 0)} | {result.tally.errors.get(name, 0)} |"
        )
    lines += ["", "## Checks", ""]
    lines += [f"- {'ok' if ok else 'FAILED'}: {name}" for name, ok in result.checks().items()]
    if result.tally.error_samples:
        lines += ["", "## First errors", ""]
        lines += [f"- {e}" for e in result.tally.error_samples]
    lines += ["", "## Samples", "", "| t (s) | RSS (KiB) | fds | p99 | requests |"]
    lines += ["| --- | --- | --- | --- | --- |"]
    for s in result.samples:
        lines.append(f"| {s.t:.0f} | {s.rss_kib} | {s.fds} | {_ms(s.p99_ms)} | {s.requests} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="load duration")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=None, help="seconds (default 10%%)")
    parser.add_argument("--settle", type=float, default=30.0, help="max seconds after the load")
    parser.add_argument("--no-nginx", action="store_true", help="aiohttp as the static pod")
    parser.add_argument(
        "--edge-only", action="store_true", help="proxy-only podgate: no kubesim, no spawns"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument("--pod", type=int, help=argparse.SUPPRESS)  # internal: serve a pod
    args = parser.parse_args(argv)
    if args.pod is not None:
        serve_pod(args.pod)
        return 0
    # Ctrl-C and a polite kill both unwind through run_soak's cleanup (even if
    # SIGINT was ignored by whoever started us, e.g. a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    seconds = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else min(60.0, seconds * 0.1)
    try:
        result = run_soak(
            seconds=seconds,
            warmup=warmup,
            sample_every=args.sample_every,
            settle=args.settle,
            use_nginx=not args.no_nginx,
            control=not args.edge_only,
        )
    except KeyboardInterrupt:
        print("interrupted: every process stopped", file=sys.stderr)
        return 130
    text = report(result)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.md"
    path.write_text(text)
    print(text)
    print(f"report: {path}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
