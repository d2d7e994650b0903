"""Event-loop lag: how late a periodic sleep wakes up, as a gauge and a histogram.

A blocking call on a loop delays everything that loop serves; this probe
makes that visible. podgate has two: the control plane's (also the ops
port's), named podgate_event_loop_*, and the edge's own, named
podgate_edge_loop_* (every proxied byte waits on it). It runs one named
task that sleeps `interval` seconds at a time and records how much later than
asked it woke. Depends on asyncio and prometheus_client only; it never
blocks, and a failure inside it is logged, never raised into the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from metrics.series import HistogramSeries

log = logging.getLogger(__name__)

# Seconds. A healthy loop wakes within a millisecond; 100 ms is felt by users.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopLagProbe(Collector):
    """Measures the lag of the running loop every `interval` seconds while started."""

    def __init__(
        self,
        registry: CollectorRegistry,
        interval: float = 0.5,
        window: int = 30,
        *,
        prefix: str = "podgate_event_loop",
        which: str = "the event loop",
    ) -> None:
        self.interval = interval
        self.prefix = prefix
        self.which = which
        # The gauge shows the worst of the last `window` samples (15 s by default):
        # a scrape every 15-30 s would see a spike only by luck if it showed the last.
        self.recent: deque[float] = deque(maxlen=window)
        self.wakeups = HistogramSeries(
            f"{prefix}_wakeup_lag_seconds",
            f"How late each periodic wake-up of {which} came.",
            LAG_BUCKETS,
        )
        self.wakeups.create()
        self._task: asyncio.Task[None] | None = None
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            f"{self.prefix}_lag_seconds",
            f"How late the latest periodic wake-ups of {self.which} came, the worst of 15 s.",
            value=max(self.recent, default=0.0),
        )
        yield self.wakeups.family()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-loop-lag-probe")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def record(self, seconds: float) -> None:
        lag = max(0.0, seconds)
        self.recent.append(lag)
        self.wakeups.observe(lag)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            try:
                self.record(loop.time() - asked)
            except Exception:  # supervised: a metrics bug must not end the probe
                log.exception("event-loop lag probe failed to record")
