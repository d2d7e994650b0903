"""Labelled counters and histograms kept as plain numbers, turned into families at scrape time.

The same shape as EdgeStats: updating one is a dict lookup and an add, with
no prometheus_client object on the caller's path, and the exposition carries
no `_created` series (the edge's metrics have none either). No I/O here.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

Labels = tuple[str, ...]


class CounterSeries:
    """A counter family: one count per label tuple."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.label_names = list(labels)
        self.counts: dict[Labels, float] = {}

    def create(self, *labels: str) -> None:
        """Make the series exist at 0, so a dashboard sees it before the first event."""
        self.counts.setdefault(labels, 0)

    def inc(self, *labels: str, amount: float = 1) -> None:
        self.counts[labels] = self.counts.get(labels, 0) + amount

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.label_names)
        for labels, count in sorted(self.counts.items()):
            family.add_metric(list(labels), count)
        return family


class HistogramSeries:
    """A histogram family: per label tuple, a count per bucket (plus +Inf) and a sum."""

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        labels: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.label_names = list(labels)
        self.bounds = tuple(float(b) for b in buckets)
        self._bound_names = (*(repr(b) for b in self.bounds), "+Inf")
        self.buckets: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = {}

    def create(self, *labels: str) -> None:
        if labels not in self.buckets:
            self.buckets[labels] = [0] * (len(self.bounds) + 1)
            self.sums[labels] = 0.0

    def observe(self, seconds: float, *labels: str) -> None:
        self.create(*labels)
        self.buckets[labels][bisect_left(self.bounds, seconds)] += 1
        self.sums[labels] += seconds

    def count(self, *labels: str) -> int:
        return sum(self.buckets.get(labels, ()))

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.label_names)
        for labels, counts in sorted(self.buckets.items()):
            cumulative, running = [], 0
            for bound, count in zip(self._bound_names, counts, strict=True):
                running += count
                cumulative.append((bound, running))
            family.add_metric(list(labels), cumulative, sum_value=self.sums[labels])
        return family
