"""The HTTPS benchmark (bench/run_https) measures real TLS through each peer.

Each peer is started as the run starts it, must route a verified HTTPS GET,
and the workloads give figures with no errors. Loads last a second, on
loopback only; they need nginx, wrk and configurable-http-proxy as the
run does (tests/run installs them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness.peers import PeerOptions, default_podgate_cmd
from bench.harness.report import Measurements
from bench.harness.tls_peers import TLS_STARTERS, https_problem, make_certificate
from bench.harness.tls_report import goals_table, tls_table
from bench.harness.tls_workloads import download, handshakes, keepalive_requests
from bench.harness.upstreams import Upstreams, start_upstreams
from bench.harness.workloads import RunContext

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-tls")


@pytest.fixture(scope="module")
def upstreams(workdir: Path) -> Iterator[Upstreams]:
    ups = start_upstreams(workdir, cpus=None)
    yield ups
    ups.stop()


@pytest.mark.parametrize("name", list(TLS_STARTERS))
def test_each_peer_serves_https_and_gives_figures(
    name: str, upstreams: Upstreams, workdir: Path
) -> None:
    opts = PeerOptions(workdir=workdir, proxy_cpus=None, podgate_cmd=default_podgate_cmd())
    peer = TLS_STARTERS[name](upstreams, opts)
    try:
        assert peer.static_base.startswith("https://")
        cert_file, _ = make_certificate(workdir)
        assert https_problem(peer, cert_file) is None
        ctx = RunContext(workdir, None, 1, 1, 0, 0, 0)
        m = Measurements()
        for workload in (keepalive_requests, handshakes, download):
            m.add(peer.name, workload(peer, ctx))
        assert m.median(peer.name, "tls_rps")
        assert m.median(peer.name, "tls_errors") == 0
        assert m.median(peer.name, "handshakes")
        assert m.median(peer.name, "handshake_errors") == 0
        assert m.median(peer.name, "tls_download_mbs")
        assert m.median(peer.name, "tls_cpu_per_100k")
        assert f"| {peer.name} |" in tls_table(m, [peer.name])
        if name == "podgate":
            assert "keep-alive requests/s >= 2.5x CHP | — |" in goals_table(m)
    finally:
        peer.stop()
    assert not any(p.alive() for p in peer.processes)


def test_run_https_quick_writes_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, str(REPO_ROOT / "bench" / "run_https"), "--quick", "--seconds", "1",
            "--stream-seconds", "1", "--peers", "podgate", "--workloads", "keepalive",
            "--out", str(tmp_path), "--proxy-cpus", "", "--load-cpus", "",
        ],
        capture_output=True, text=True, timeout=180, env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    written = list(tmp_path.glob("bench-https-*.md"))
    assert len(written) == 1
    text = written[0].read_text()
    assert "| figure (HTTPS) | podgate |" in text
    assert "small GET, 64 keep-alive conns: requests/s" in text
