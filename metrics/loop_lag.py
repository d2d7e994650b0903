"""Event-loop lag: how late a periodic sleep wakes up, as a gauge and a histogram.

Everything in podgate shares one event loop, so a blocking call anywhere
delays every proxied byte; this probe makes that visible. It runs one named
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
        self, registry: CollectorRegistry, interval: float = 0.5, window: int = 30
    ) -> None:
        self.interval = interval
        # The gauge shows the worst of the last `window` samples (15 s by default):
        # a scrape every 15-30 s would see a spike only by luck if it showed the last.
        self.recent: deque[float] = deque(maxlen=window)
        self.wakeups = HistogramSeries(
            "podgate_event_loop_wakeup_lag_seconds",
            "How late each periodic wake-up of the event loop came.",
            LAG_BUCKETS,
        )
        self.wakeups.create()
        self._task: asyncio.Task[None] | None = None
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "podgate_event_loop_lag_seconds",
            "How late the latest periodic wake-ups of the event loop came, the worst of 15 s.",
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
