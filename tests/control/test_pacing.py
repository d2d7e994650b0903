"""Start pacing: turns handed out 1/rate apart, in order; no pacing without a rate."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from control.pacing import StartPacer


def test_turns_are_spaced_by_the_rate() -> None:
    pacer = StartPacer(10.0)
    delays = [pacer.delay() for _ in range(5)]
    assert delays[0] == pytest.approx(0.0, abs=0.01)
    for before, after in itertools.pairwise(delays):
        assert after - before == pytest.approx(0.1, abs=0.01)


def test_no_rate_means_no_wait() -> None:
    pacer = StartPacer(None)
    assert [pacer.delay() for _ in range(100)] == [0.0] * 100


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        StartPacer(0)


async def test_a_paced_start_does_not_hold_its_caller(make_podgate) -> None:  # type: ignore[no-untyped-def]
    pg = await make_podgate({"spawner": {"start_rate": 2.0}})
    spawner = pg.control.spawner
    began = time.monotonic()
    await asyncio.gather(*(spawner.start(f"user{i}") for i in range(4)))
    assert time.monotonic() - began < 1.0  # 4 starts at 2/s would take 1.5 s if held
    statuses = [await spawner.wait(f"user{i}", 10) for i in range(4)]
    assert [s.state for s in statuses] == ["running"] * 4
    waited = [e.message for e in pg.control.progress.events("user3")]
    assert any("Waiting for a start slot" in m for m in waited), waited
    assert time.monotonic() - began >= 1.4  # the last create came at its turn
