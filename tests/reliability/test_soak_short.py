"""The soak, short: 20 seconds of bench/soak.py's mixed load against a real `podgate run`.

kubesim (echo pods), podgate with its control plane, the static pod (nginx
when installed, else aiohttp) and the streaming pod run as their own
processes on 127.0.0.1; the load, spawns and stops included, runs in this
process. The long version is `bench/soak.py --minutes 15`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SOAK_FILE = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
LOAD_SECONDS = 20.0


def _load_soak() -> ModuleType:
    # bench/ is no installed package: load the script by its path.
    spec = importlib.util.spec_from_file_location("podgate_bench_soak", SOAK_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


soak = _load_soak()


@pytest.fixture(scope="module")
def result() -> Any:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NO_PROXY", "127.0.0.1,localhost")
        return soak.run_soak(seconds=LOAD_SECONDS, warmup=4.0, sample_every=2.0, settle=8.0)


def test_every_kind_of_request_got_through_without_unexpected_errors(result: Any) -> None:
    assert result.podgate_alive
    assert result.tally.errors == {}, result.tally.error_samples
    for kind in soak.load_kinds():
        assert result.tally.done.get(kind.name, 0) > 0, f"no {kind.name} completed"
    # At the steady rate, hundreds of small requests each, not a trickle.
    assert result.tally.done["small-get"] > 100


def test_users_start_use_and_stop_servers_again_and_again(result: Any) -> None:
    # Each spawn-stop round is SPAWN_CONCURRENCY users logging in, starting
    # (progress followed to ready), using the pod over HTTP and a WebSocket,
    # stopping, and being sent to the spawn page afterwards.
    assert result.control
    rounds = result.tally.done["spawn-stop"]
    assert rounds >= 3, soak.report(result)
    assert len(result.tally.spawn_seconds) == rounds * soak.SPAWN_CONCURRENCY
    # The pool is smaller than the starts: the same users came back after a stop.
    assert len(result.tally.spawn_seconds) > soak.SPAWN_USER_POOL
    assert "Starts: " in soak.report(result)


def test_open_descriptors_return_to_baseline(result: Any) -> None:
    assert result.final.fds <= result.baseline.fds + soak.FD_MARGIN, soak.report(result)


def test_memory_returns_to_baseline(result: Any) -> None:
    assert result.final.rss_kib <= result.baseline.rss_kib * (1 + soak.RSS_MARGIN), soak.report(
        result
    )


def test_report_gives_the_verdict_and_figures(result: Any) -> None:
    text = soak.report(result)
    assert text.startswith("# podgate soak: ")
    for figure in ("RSS (KiB)", "open fds", "KiB/min", "Small-request p99"):
        assert figure in text


def test_an_unexpected_error_fails_the_verdict(result: Any) -> None:
    failing = soak.SoakResult(
        seconds=result.seconds,
        static_kind=result.static_kind,
        samples=result.samples,
        baseline=result.baseline,
        final=result.final,
        tally=soak.Tally(done=dict(result.tally.done)),
        podgate_alive=True,
    )
    failing.tally.error("refused", "status 502, expected 503")
    assert not failing.passed
    assert failing.checks()["no unexpected errors"] is False
    text = soak.report(failing)
    assert text.startswith("# podgate soak: FAIL")
    assert "refused: status 502, expected 503" in text


def test_descriptors_left_open_fail_the_verdict(result: Any) -> None:
    leaked = soak.Sample(
        t=result.final.t,
        rss_kib=result.baseline.rss_kib,
        fds=result.baseline.fds + soak.FD_MARGIN + 1,
        p99_ms=None,
        requests=0,
    )
    failing = soak.SoakResult(
        seconds=result.seconds,
        static_kind=result.static_kind,
        samples=[*result.samples, leaked],
        baseline=result.baseline,
        final=leaked,
        tally=soak.Tally(),
        podgate_alive=True,
    )
    assert not failing.passed


def test_a_slower_last_stretch_fails_the_verdict(result: Any) -> None:
    def interval(t: float, seconds: float) -> Any:
        return soak.Sample(
            t=t,
            rss_kib=1000,
            fds=20,
            p99_ms=seconds * 1000,
            requests=100,
            latencies=[seconds] * 100,
        )

    samples = [interval(t, 0.002) for t in range(2, 20, 2)] + [interval(20, 0.005)]
    slowed = soak.SoakResult(
        seconds=20.0,
        static_kind=result.static_kind,
        samples=samples,
        baseline=samples[0],
        final=samples[-1],
        tally=soak.Tally(),
        podgate_alive=True,
    )
    assert slowed.first_last_p99() == (2.0, 5.0)
    assert not slowed.passed
    samples[-1] = interval(20, 0.003)
    assert slowed.passed
