"""PodgateMetrics: every Prometheus metric podgate exports, declared in one place.

One object with its own CollectorRegistry (never prometheus_client's global
one), passed to whoever serves /metrics. The edge's hot-path counters live
in EdgeStats as plain numbers; the collector here turns them into metric
families only when /metrics is scraped, so a request never touches a
prometheus_client object. Depends on prometheus_client only: no I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from metrics.control_metrics import ControlMetrics
from metrics.edge_stats import DURATION_BUCKETS, EdgeStats
from metrics.loop_lag import LoopLagProbe
from metrics.tls_metrics import TlsMetrics

# Methods outside this set are reported as "other", so a client inventing
# methods cannot grow the number of series without bound.
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)

_BUCKET_BOUNDS = (*(repr(float(b)) for b in DURATION_BUCKETS), "+Inf")


class EdgeCollector(Collector):
    """Reads EdgeStats at scrape time and yields the edge's metric families."""

    def __init__(self, stats: EdgeStats, table_size: Callable[[], int]) -> None:
        self._stats = stats
        self._table_size = table_size

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        yield self._requests()
        yield self._durations()

        errors = CounterMetricFamily(
            "podgate_upstream_errors",
            "Requests the edge could not complete because of the upstream, by kind.",
            labels=["kind"],
        )
        for kind, count in sorted(s.upstream_errors.items()):
            errors.add_metric([kind], count)
        yield errors

        yield GaugeMetricFamily(
            "podgate_websockets_active",
            "WebSocket connections being relayed now.",
            value=s.websockets_active,
        )
        yield CounterMetricFamily(
            "podgate_websockets",
            "WebSocket connections relayed since start.",
            value=s.websockets_total,
        )

        relayed = CounterMetricFamily(
            "podgate_relayed_bytes",
            "Body and WebSocket bytes relayed, by direction.",
            labels=["direction"],
        )
        relayed.add_metric(["to_upstream"], s.bytes_to_upstream)
        relayed.add_metric(["to_client"], s.bytes_to_client)
        yield relayed

        yield GaugeMetricFamily(
            "podgate_routes", "Routes in the route table.", value=self._table_size()
        )

        rejections = CounterMetricFamily(
            "podgate_cookie_rejections",
            "Session cookies that did not authenticate, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(s.cookie_rejections.items()):
            rejections.add_metric([reason], count)
        yield rejections

    def _requests(self) -> Metric:
        family = CounterMetricFamily(
            "podgate_requests",
            "Requests answered by the edge, by method, status code and route kind.",
            labels=["method", "code", "route_kind"],
        )
        merged: dict[tuple[str, str, str], int] = {}
        for (method, code, kind), count in list(self._stats.requests.items()):
            key = (method if method in _KNOWN_METHODS else "other", str(code), kind)
            merged[key] = merged.get(key, 0) + count
        for labels, count in sorted(merged.items()):
            family.add_metric(list(labels), count)
        return family

    def _durations(self) -> Metric:
        family = HistogramMetricFamily(
            "podgate_request_duration_seconds",
            "Time from request received to response finished at the edge, by route kind.",
            labels=["route_kind"],
        )
        for kind, counts in self._stats.duration_buckets.items():
            cumulative, running = [], 0
            for bound, count in zip(_BUCKET_BOUNDS, counts, strict=True):
                running += count
                cumulative.append((bound, running))
            family.add_metric([kind], cumulative, sum_value=self._stats.duration_sum[kind])
        return family


class PodgateMetrics:
    """All of podgate's metrics, on a registry of their own."""

    # exposition() writes the classic text format, whatever prometheus_client's
    # CONTENT_TYPE_LATEST says in the installed version.
    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, edge: EdgeStats, table_size: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.edge = edge
        ProcessCollector(registry=self.registry)
        self.registry.register(EdgeCollector(edge, table_size))
        # Declared even without a control plane (proxy-only): the wiring hands
        # their observers to the control plane, which never imports metrics/.
        self.control = ControlMetrics(self.registry)
        self.tls = TlsMetrics(self.registry)  # only with tls configured does it show a cert
        # Started and stopped by the wiring with the servers.
        self.loop_lag = LoopLagProbe(self.registry, which="the control plane's event loop")
        self.edge_loop_lag = LoopLagProbe(
            self.registry, prefix="podgate_edge_loop", which="the edge's event loop"
        )

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)
