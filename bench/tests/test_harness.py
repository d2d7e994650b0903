"""The benchmark harness measures what it claims: real nginx, wrk and WebSocket runs.

Run with `pytest bench/tests` (they need nginx and wrk, as bench/run does).
Every load here lasts a second or two, on loopback only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import procs, report, route_lookup
from bench.harness.peers import (
    Peer,
    PeerOptions,
    PeerUnavailable,
    _check_routed,
    routing_problem,
    start_direct,
    start_nginx,
)
from bench.harness.report import TIMES
from bench.harness.upstreams import POST_PATH, SMALL_PATH, Upstreams, start_upstreams
from bench.harness.workloads import RunContext, idle_websockets, streaming, websockets
from bench.harness.wrk import RequestShape, WrkFailed, run_wrk

REPO_ROOT = Path(__file__).resolve().parents[2]

needs_tools = pytest.mark.skipif(
    not (os.path.exists("/usr/sbin/nginx") and shutil.which("wrk")),
    reason="needs nginx and wrk",
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def upstreams(workdir: Path) -> Iterator[Upstreams]:
    ups = start_upstreams(workdir, cpus=None)
    yield ups
    ups.stop()


@pytest.fixture
def ctx(workdir: Path) -> RunContext:
    return RunContext(
        workdir=workdir,
        load_cpus=None,
        seconds=1,
        stream_seconds=1,
        ws_seconds=1,
        ws_bulk_bytes=8 * 1024 * 1024,
        ws_idle_count=50,
    )


@pytest.fixture
def nginx_peer(upstreams: Upstreams, workdir: Path) -> Iterator[Peer]:
    peer = start_nginx(upstreams, PeerOptions(workdir=workdir, proxy_cpus=None, podgate_cmd=[]))
    yield peer
    peer.stop()
    assert not any(p.alive() for p in peer.processes)


@needs_tools
def test_wrk_reports_requests_latency_and_no_errors(upstreams: Upstreams, workdir: Path) -> None:
    result = run_wrk(
        upstreams.static_base + POST_PATH,
        RequestShape("POST", 100),
        connections=4,
        seconds=1,
        timeout_s=2,
        cpus=None,
        workdir=workdir,
    )
    assert result.requests > 100
    assert result.errors == 0
    assert 0 < result.p50_ms <= result.p99_ms


@needs_tools
def test_wrk_counts_error_statuses_and_refused_connections(
    upstreams: Upstreams, workdir: Path
) -> None:
    missing = run_wrk(
        upstreams.static_base + "/user/bench/missing",
        RequestShape(),
        connections=2,
        seconds=1,
        timeout_s=2,
        cpus=None,
        workdir=workdir,
    )
    assert missing.requests > 0
    assert missing.bad_status == missing.requests
    # wrk gives up at once on a port that refuses; the run fails with wrk's reason.
    with pytest.raises(WrkFailed, match="unable to connect"):
        run_wrk(
            f"http://127.0.0.1:{procs.free_port()}/",
            RequestShape(),
            connections=2,
            seconds=1,
            timeout_s=1,
            cpus=None,
            workdir=workdir,
        )


@needs_tools
def test_nginx_peer_streams_and_reports_its_worker_rss(nginx_peer: Peer, ctx: RunContext) -> None:
    figures = streaming(nginx_peer, ctx)
    assert figures["download_mbs"] and figures["download_mbs"] > 10
    assert figures["upload_mbs"] and figures["upload_mbs"] > 10
    # A streaming proxy's peak stays far below the 256 MiB it relayed.
    assert figures["download_rss_mb"] and 1 < figures["download_rss_mb"] < 200


@needs_tools
def test_websocket_figures_through_nginx(nginx_peer: Peer, ctx: RunContext) -> None:
    figures = websockets(nginx_peer, ctx)
    assert figures["ws_round_trips"] and figures["ws_round_trips"] > 50
    assert figures["ws_bulk_mbs"] and figures["ws_bulk_mbs"] > 1
    idle = idle_websockets(nginx_peer, ctx)
    assert idle["ws_idle_opened"] == 50
    assert idle["ws_idle_kib"] is not None
    assert ctx.notes == []


@needs_tools
def test_direct_peer_has_no_proxy_figures(upstreams: Upstreams, ctx: RunContext) -> None:
    peer = start_direct(upstreams, PeerOptions(ctx.workdir, None, []))
    figures = streaming(peer, ctx)
    assert figures["download_mbs"] and figures["download_mbs"] > 10
    assert figures["download_rss_mb"] is None


def test_a_peer_that_does_not_route_is_unavailable() -> None:
    dead = f"http://127.0.0.1:{procs.free_port()}"
    peer = Peer("nowhere", dead, dead, None)
    assert routing_problem(peer) is not None
    with pytest.raises(PeerUnavailable):
        _check_routed(peer)


@needs_tools
def test_a_peer_answering_something_else_is_unavailable(upstreams: Upstreams) -> None:
    # The upstream app has no SMALL_PATH: a 404 must never be benchmarked as a success.
    peer = Peer("wrong", upstreams.app_base, upstreams.app_base, None)
    problem = routing_problem(peer)
    assert problem is not None and "404" in problem and SMALL_PATH in problem


def test_report_gives_medians_ratios_and_targets() -> None:
    m = report.Measurements()
    for rps in (900.0, 1000.0, 5000.0):
        m.add("chp", {"small_rps": rps, "ws_idle_kib": None})
    for rps in (3000.0, 3300.0, 100.0):
        m.add("podgate", {"small_rps": rps})
    assert m.median("chp", "small_rps") == 1000.0
    assert m.median("chp", "ws_idle_kib") is None
    table = report.markdown_table(m, ["chp", "podgate"], idle_count=10)
    assert f"| 1. small POST, 64 conns: requests/s ↑ | 1,000 | 3,000 | 3.00{TIMES} |" in table
    targets = report.targets_table(m, ["chp", "podgate"])
    assert f"| small requests/s >= 3x CHP | 3.00{TIMES} met |" in targets


def test_proc_figures_of_a_running_process() -> None:
    pid = os.getpid()
    assert procs.cpu_seconds(pid) > 0
    assert procs.reset_peak_rss(pid)
    assert procs.peak_rss_kib(pid) >= procs.rss_kib(pid) > 0
    assert procs.idle_sockets_within(20_000, 10_000) == 9_900
    assert procs.idle_sockets_within(1_000_000, 10_000) == 10_000


def test_wait_for_port_gives_up_when_the_process_exits(tmp_path: Path) -> None:
    proc = procs.start("quitter", [sys.executable, "-c", "pass"], log_dir=tmp_path, cpus="0")
    try:
        assert not procs.wait_for_port(procs.free_port(), timeout=10, proc=proc)
    finally:
        proc.stop()
    assert not proc.alive()


def test_route_lookup_does_not_grow_with_table_size() -> None:
    small = route_lookup.lookup_ns(1, lookups=5_000, repeats=3)
    large = route_lookup.lookup_ns(20_000, lookups=5_000, repeats=3)
    assert small["hit_ns"] > 0
    # Generous bound: a shared machine is noisy, a linear scan would be ~1000x.
    assert large["hit_ns"] < small["hit_ns"] * 5


@needs_tools
def test_bench_run_end_to_end_writes_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *(str(REPO_ROOT / "bench" / "run"), "--quick", "--peers", "direct,nginx"),
            *("--workloads", "small", "--seconds", "1", "--out", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    written = list(tmp_path.glob("bench-*-quick.md"))
    assert len(written) == 1
    text = written[0].read_text()
    assert "| figure | direct | nginx |" in text
    assert "requests/s" in text and "Versions:" in text
