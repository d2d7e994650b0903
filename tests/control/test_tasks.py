"""Background tasks of the control plane: named, started once, stopped cleanly, rounds survive."""

from __future__ import annotations

import asyncio
import logging

import pytest

from control.tasks import BackgroundTask, rounds


async def test_a_task_starts_once_and_stops_cleanly() -> None:
    started = 0
    forever = asyncio.Event()

    async def run() -> None:
        nonlocal started
        started += 1
        await forever.wait()

    task = BackgroundTask("job-under-test", run)
    await task.start()
    await task.start()  # a second start while running changes nothing
    await asyncio.sleep(0)
    assert started == 1 and task.running
    assert any(t.get_name() == "job-under-test" for t in asyncio.all_tasks())
    await task.stop()
    assert not task.running
    await task.stop()  # stopping twice is fine


async def test_a_failing_round_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    two_more = asyncio.Event()

    async def one_round() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        if calls >= 3:
            two_more.set()

    log = logging.getLogger("test-rounds")
    task = BackgroundTask("rounds-under-test", lambda: rounds(lambda: 0.001, one_round, log))
    with caplog.at_level(logging.ERROR, logger="test-rounds"):
        await task.start()
        await asyncio.wait_for(two_more.wait(), 2)
        await task.stop()
    assert calls >= 3
    assert "rounds-under-test: a round failed unexpectedly" in caplog.text
    assert "boom" in caplog.text
