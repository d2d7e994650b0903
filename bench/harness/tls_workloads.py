"""The HTTPS workloads: keep-alive requests/s, new TLS connections/s, a 256 MiB download.

Driven by wrk (which speaks TLS and does not resume sessions, so every new
connection is a full handshake) from the load core, with the proxy's CPU and
RSS read from /proc as the HTTP workloads do. Each returns figures by key and
never starts or stops a peer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.harness import procs
from bench.harness.peers import Peer
from bench.harness.upstreams import BIG_PATH, SMALL_PATH
from bench.harness.workloads import MB, Figures, RunContext, peer_wrk
from bench.harness.wrk import RequestShape


@dataclass(frozen=True)
class TlsFigure:
    key: str
    label: str
    higher_is_better: bool


TLS_FIGURES: tuple[TlsFigure, ...] = (
    TlsFigure("tls_rps", "small GET, 64 keep-alive conns: requests/s", True),
    TlsFigure("tls_p99_ms", "small GET: p99 latency (ms)", False),
    TlsFigure("tls_errors", "small GET: errors", False),
    TlsFigure("tls_cpu_per_100k", "proxy CPU seconds per 100k requests", False),
    TlsFigure("handshakes", "new TLS connections/s (Connection: close)", True),
    TlsFigure("handshake_errors", "new connections: errors", False),
    TlsFigure("tls_download_mbs", "256 MiB download: MB/s", True),
    TlsFigure("tls_download_rss_mb", "download: proxy peak RSS (MB)", False),
    TlsFigure("tls_download_growth_mb", "download: peak RSS over idle RSS (MB)", False),
)


def keepalive_requests(peer: Peer, ctx: RunContext) -> Figures:
    """100-byte GETs on 64 kept-alive TLS connections; the proxy's CPU over the run."""
    pid = peer.measured_pid
    before = procs.cpu_seconds(pid) if pid else None
    result = peer_wrk(peer, ctx, SMALL_PATH, RequestShape("GET"), connections=64)
    cpu = None
    if pid and before is not None and result.requests:
        cpu = (procs.cpu_seconds(pid) - before) / result.requests * 100_000
    return {
        "tls_rps": result.requests_per_second,
        "tls_p99_ms": result.p99_ms,
        "tls_errors": result.errors,
        "tls_cpu_per_100k": cpu,
    }


def handshakes(peer: Peer, ctx: RunContext) -> Figures:
    """One request per connection on 16 connections at a time: full handshakes per second."""
    result = peer_wrk(peer, ctx, SMALL_PATH, RequestShape("GET", close=True), connections=16)
    return {"handshakes": result.requests_per_second, "handshake_errors": result.errors}


def download(peer: Peer, ctx: RunContext) -> Figures:
    """One TLS connection downloading 256 MiB repeatedly; the proxy's peak RSS."""
    idle = procs.rss_kib(peer.measured_pid) * 1024 / MB if peer.measured_pid else None
    if peer.measured_pid:
        procs.reset_peak_rss(peer.measured_pid)
    result = peer_wrk(
        peer, ctx, BIG_PATH, RequestShape("GET"),
        connections=1, seconds=ctx.stream_seconds, timeout_s=60,
    )  # fmt: skip
    rss = procs.peak_rss_kib(peer.measured_pid) * 1024 / MB if peer.measured_pid else None
    if result.errors:
        ctx.notes.append(f"download over TLS on {peer.name}: {result.errors} errors")
    return {
        "tls_download_mbs": result.bytes_read / result.seconds / MB if not result.errors else None,
        "tls_download_rss_mb": rss,
        "tls_download_growth_mb": rss - idle if rss is not None and idle is not None else None,
    }


TLS_WORKLOADS: dict[str, Callable[[Peer, RunContext], Figures]] = {
    "keepalive": keepalive_requests,
    "handshakes": handshakes,
    "download": download,
}
