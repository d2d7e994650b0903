"""Short pauses of the cyclic garbage collector.

CPython's collector stops every thread while it walks its objects, and a
full pass walks all of them: in a spawn storm, with the heap growing by the
storm's sessions, pods and records, full passes came every few seconds and
stalled every proxied request for 100-300 ms. So:

- what is alive once podgate serves (modules, grammars, the config) is
  frozen out of the collector's sight;
- after every full pass, what survived it is frozen too, so the next full
  pass walks only what came since (pauses follow the recent growth, not the
  heap's size);
- once an hour everything is thawed and swept in one full pass, so garbage
  cycles among frozen objects (a closed WebSocket's, a stopped start's) are
  reclaimed: one pause an hour instead of a pause every few seconds in a storm.

Only the collector's bookkeeping changes: reference counting frees
everything that is not in a cycle as before.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

SWEEP_SECONDS = 3600.0


class HeapKeeper:
    """Freezes survivors of full passes, and sweeps everything once per `sweep_seconds`."""

    def __init__(self, sweep_seconds: float = SWEEP_SECONDS) -> None:
        self.sweep_seconds = sweep_seconds
        self.sweeps = 0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Freeze what is alive now; from now on, full passes freeze their survivors."""
        gc.collect()
        gc.freeze()
        if self._freeze_survivors not in gc.callbacks:
            gc.callbacks.append(self._freeze_survivors)
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._freeze_survivors in gc.callbacks:
            gc.callbacks.remove(self._freeze_survivors)

    def sweep(self) -> None:
        """Thaw everything, collect it all in one pass, and freeze what is left."""
        began = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self.sweeps += 1
        log.info(
            "swept the heap: %d unreachable objects, %.0f ms, %d objects frozen",
            found,
            (time.perf_counter() - began) * 1000,
            gc.get_freeze_count(),
        )

    def _freeze_survivors(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()

    def _schedule(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.sweep_seconds, self._sweep_due)

    def _sweep_due(self) -> None:
        self.sweep()
        self._schedule()
