"""HeapKeeper: survivors of full passes leave the collector's sight; the hourly sweep
still reclaims cycles among them."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from podgate.heap import HeapKeeper


class Node:
    """Something in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def keeper() -> Iterator[HeapKeeper]:
    keeper = HeapKeeper(sweep_seconds=3600)
    yield keeper
    keeper.stop()
    gc.unfreeze()  # the rest of the test session sees a heap as it was


async def test_what_survives_a_full_pass_is_frozen(keeper: HeapKeeper) -> None:
    keeper.start()
    frozen_at_start = gc.get_freeze_count()
    assert frozen_at_start > 0
    kept = [Node() for _ in range(1000)]
    gc.collect()  # a full pass: its survivors are frozen after it
    assert gc.get_freeze_count() >= frozen_at_start + len(kept)
    assert len(kept) == 1000


async def test_the_sweep_reclaims_cycles_among_frozen_objects(keeper: HeapKeeper) -> None:
    keeper.start()
    node = Node()
    gc.collect()  # frozen now, still referenced
    ref = weakref.ref(node)
    del node
    gc.collect()  # frozen objects are out of sight: the cycle stays
    assert ref() is not None
    keeper.sweep()
    assert ref() is None
    assert keeper.sweeps == 1
    assert gc.get_freeze_count() > 0  # what is still alive is frozen again


async def test_the_sweep_comes_on_its_timer_and_stop_ends_both(keeper: HeapKeeper) -> None:
    keeper.sweep_seconds = 0.05
    keeper.start()
    for _ in range(400):  # 20 s: a sweep of a big test session's heap takes a while
        if keeper.sweeps >= 2:
            break
        await asyncio.sleep(0.05)
    assert keeper.sweeps >= 2
    keeper.stop()
    sweeps = keeper.sweeps
    await asyncio.sleep(0.3)
    assert keeper.sweeps == sweeps
    before = gc.get_freeze_count()
    gc.unfreeze()
    gc.collect()  # with the keeper stopped, a full pass freezes nothing
    assert gc.get_freeze_count() == 0 <= before
