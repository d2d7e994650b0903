"""Workloads 1-5 of the benchmark protocol, each run against one peer at a time.

A workload drives load from the load core (wrk or the WebSocket client),
reads the proxy's CPU and RSS from /proc around it, and returns its
figures by key. It never starts or stops a peer. Workload 6 (the control
plane) lives in bench/harness/control_plane.py.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import procs
from bench.harness.peers import Peer
from bench.harness.upstreams import (
    BIG_PATH,
    ECHO_PATH,
    POST_PATH,
    SOURCE_PATH,
    UPLOAD_PATH,
)
from bench.harness.wrk import RequestShape, WrkResult, run_wrk

UPLOAD_BYTES = 64 * 1024 * 1024
MB = 1_000_000
WS_CLIENT = Path(__file__).with_name("ws_client.py")
# wrk's own default: a request slower than this counts as a timeout (issue 2 asks for zero).
WRK_DEFAULT_TIMEOUT = 2.0

Figures = dict[str, float | None]


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    higher_is_better: bool
    proxy_only: bool = False  # a figure of the proxy process: none for "direct"


# Table rows, in protocol order.
FIGURES: tuple[Figure, ...] = (
    Figure("small_rps", "1. small POST, 64 conns: requests/s", True),
    Figure("small_p50_ms", "1. small POST: p50 latency (ms)", False),
    Figure("small_p99_ms", "1. small POST: p99 latency (ms)", False),
    Figure("small_errors", "1. small POST: errors", False),
    Figure("many_rps", "2. 1,000 conns: requests/s", True),
    Figure("many_p99_ms", "2. 1,000 conns: p99 latency (ms)", False),
    Figure("many_errors", "2. 1,000 conns: errors + timeouts", False),
    Figure("download_mbs", "3. 256 MiB download: MB/s", True),
    Figure("download_rss_mb", "3. download: proxy peak RSS (MB)", False, proxy_only=True),
    Figure("upload_mbs", "3. 64 MiB upload: MB/s", True),
    Figure("upload_rss_mb", "3. upload: proxy peak RSS (MB)", False, proxy_only=True),
    Figure("ws_round_trips", "4. WebSocket 100 B round-trips/s", True),
    Figure("ws_bulk_mbs", "4. WebSocket bulk one-way MB/s", True),
    Figure("ws_idle_opened", "4. idle WebSockets held (of N)", True),
    Figure("ws_idle_kib", "4. proxy memory per idle WebSocket (KiB)", False, proxy_only=True),
    Figure("cpu_per_100k", "5. proxy CPU seconds per 100k requests", False, proxy_only=True),
)


@dataclass(frozen=True)
class RunContext:
    workdir: Path
    load_cpus: str | None
    seconds: float  # each wrk run of workloads 1, 2 (and so 5)
    stream_seconds: float  # each download / upload run
    ws_seconds: float  # the round-trip run
    ws_bulk_bytes: int
    ws_idle_count: int
    notes: list[str] = field(default_factory=list)  # what the report should mention


def peer_wrk(peer: Peer, ctx: RunContext, path: str, shape: RequestShape, **kw: float) -> WrkResult:
    """wrk against `path` of `peer`, on the load CPUs, for the run's seconds unless told."""
    return run_wrk(
        peer.url(path),
        shape,
        connections=int(kw.get("connections", 64)),
        seconds=kw.get("seconds", ctx.seconds),
        timeout_s=kw.get("timeout_s", WRK_DEFAULT_TIMEOUT),
        cpus=ctx.load_cpus,
        workdir=ctx.workdir,
    )


def small_requests(peer: Peer, ctx: RunContext) -> Figures:
    """Workloads 1 and 5: 100-byte POSTs on 64 connections; proxy CPU over the run."""
    shape = RequestShape("POST", 100, peer.cookie)
    cpu_before = procs.cpu_seconds(peer.measured_pid) if peer.measured_pid else None
    result = peer_wrk(peer, ctx, POST_PATH, shape, connections=64)
    cpu = None
    if peer.measured_pid and cpu_before is not None and result.requests:
        cpu = (procs.cpu_seconds(peer.measured_pid) - cpu_before) / result.requests * 100_000
    return {
        "small_rps": result.requests_per_second,
        "small_p50_ms": result.p50_ms,
        "small_p99_ms": result.p99_ms,
        "small_errors": result.errors,
        "cpu_per_100k": cpu,
    }


def many_connections(peer: Peer, ctx: RunContext) -> Figures:
    """Workload 2: the same small POSTs on 1,000 connections."""
    shape = RequestShape("POST", 100, peer.cookie)
    result = peer_wrk(peer, ctx, POST_PATH, shape, connections=1000)
    return {
        "many_rps": result.requests_per_second,
        "many_p99_ms": result.p99_ms,
        "many_errors": result.errors,
    }


def _peak_rss_mb(peer: Peer) -> float | None:
    if not peer.measured_pid:
        return None
    return procs.peak_rss_kib(peer.measured_pid) * 1024 / MB


def _reset_peak(peer: Peer) -> None:
    if peer.measured_pid:
        procs.reset_peak_rss(peer.measured_pid)


def streaming(peer: Peer, ctx: RunContext) -> Figures:
    """Workload 3: one connection downloading 256 MiB, then uploading 64 MiB, repeatedly."""
    _reset_peak(peer)
    down = peer_wrk(
        peer, ctx, BIG_PATH, RequestShape("GET", 0, peer.cookie),
        connections=1, seconds=ctx.stream_seconds, timeout_s=60,
    )  # fmt: skip
    down_rss = _peak_rss_mb(peer)
    _reset_peak(peer)
    up = peer_wrk(
        peer, ctx, UPLOAD_PATH, RequestShape("POST", UPLOAD_BYTES, peer.cookie),
        connections=1, seconds=ctx.stream_seconds, timeout_s=60,
    )  # fmt: skip
    up_rss = _peak_rss_mb(peer)
    for what, result in (("download", down), ("upload", up)):
        if result.errors:
            ctx.notes.append(f"{what} on {peer.name}: {_error_summary(result)}")
    return {
        "download_mbs": down.bytes_read / down.seconds / MB if not down.errors else None,
        "download_rss_mb": down_rss,
        # wrk counts only bytes read; on one connection an upload's time is its latency.
        "upload_mbs": UPLOAD_BYTES / (up.mean_ms / 1000) / MB
        if up.requests and not up.errors
        else None,
        "upload_rss_mb": up_rss,
    }


def _error_summary(result: WrkResult) -> str:
    return (
        f"{result.socket_errors} socket errors, {result.timeouts} timeouts, "
        f"{result.bad_status} error statuses in {result.requests} requests"
    )


def _ws_client(peer: Peer, ctx: RunContext, mode: str, path: str, *extra: str) -> list[str]:
    cmd = [sys.executable, str(WS_CLIENT), mode, "--url", peer.url(path, ws=True), *extra]
    if peer.cookie:
        cmd += ["--cookie", peer.cookie]
    return procs.pinned(cmd, ctx.load_cpus)


def _run_ws_client(cmd: list[str], timeout: float) -> dict[str, object]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"ws client gave nothing: {done.stderr[-500:]}")
    result: dict[str, object] = json.loads(lines[-1])
    if "error" in result:
        raise RuntimeError(f"ws client: {result['error']}")
    return result


def websockets(peer: Peer, ctx: RunContext) -> Figures:
    """Workload 4: sequential round-trips on one socket, then bulk one-way."""
    rt = _run_ws_client(
        _ws_client(peer, ctx, "rt", ECHO_PATH, "--seconds", str(ctx.ws_seconds)),
        timeout=ctx.ws_seconds + 30,
    )
    bulk = _run_ws_client(
        _ws_client(peer, ctx, "bulk", SOURCE_PATH, "--bytes", str(ctx.ws_bulk_bytes)),
        timeout=90,
    )
    return {
        "ws_round_trips": float(rt["round_trips"]) / float(rt["seconds"]),  # type: ignore[arg-type]
        "ws_bulk_mbs": float(bulk["bytes"]) / float(bulk["seconds"]) / MB,  # type: ignore[arg-type]
    }


def idle_websockets(peer: Peer, ctx: RunContext) -> Figures:
    """Workload 4, idle part: open N sockets, hold them, read the proxy's RSS growth per socket.

    Run on a freshly started peer (see FRESH_PEER): memory a process freed
    after earlier workloads stays resident in its allocator and would hide
    the growth.
    """
    pid = peer.measured_pid
    before = procs.rss_kib(pid) if pid else None
    cmd = _ws_client(
        peer, ctx, "idle", ECHO_PATH, "--count", str(ctx.ws_idle_count), "--seconds", "60"
    )
    client = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = _read_line(client, timeout=90)
        report = json.loads(line)
        opened = int(report.get("opened", 0))
        if opened < ctx.ws_idle_count:
            ctx.notes.append(
                f"idle WebSockets on {peer.name}: {opened} of {ctx.ws_idle_count} opened, "
                f"client errors {report.get('failures')}"
            )
        time.sleep(1.0)  # let the proxy settle its buffers before reading RSS
        after = procs.rss_kib(pid) if pid else None
        assert client.stdin is not None
        client.stdin.write("\n")
        client.stdin.flush()
        client.wait(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(timeout=10)
    kib = None
    if before is not None and after is not None and opened:
        kib = (after - before) / opened
    return {"ws_idle_opened": float(opened), "ws_idle_kib": kib}


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The child's first stdout line, or RuntimeError after `timeout` seconds."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise RuntimeError("idle WebSocket client did not report in time")
    return proc.stdout.readline()


Workload = Callable[[Peer, RunContext], Figures]

# Names are what --workloads accepts.
WORKLOADS: dict[str, Workload] = {
    "small": small_requests,
    "many": many_connections,
    "stream": streaming,
    "websocket": websockets,
    "idle": idle_websockets,
}

# Workloads measured on a peer started just for them, then stopped.
FRESH_PEER = frozenset({"idle"})
# Workloads driven by wrk: skipped, with a note, where wrk is not installed.
NEEDS_WRK = frozenset({"small", "many", "stream"})
