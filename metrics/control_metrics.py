"""ControlMetrics: the control plane's Prometheus metrics, with JupyterHub's names under podgate_.

Events (a spawn ended, a sign-in, a Kubernetes request, a cull) arrive through
observer methods the wiring hands to the control plane; figures that are a
state of the world (running servers, users, watch health) are read from
callables at scrape time, so nothing has to keep a gauge in step. Every label
value we know of is created up front, so a dashboard sees 0 rather than no
series. Depends on prometheus_client only: never imports control/, never does
I/O, and an observer never raises into the caller's path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from metrics.series import CounterSeries, HistogramSeries

# SpawnFailed reasons (control.errors); "" for outcomes that have none.
SPAWN_FAILURE_REASONS = (
    "image_pull",
    "crash_loop",
    "out_of_memory",
    "unschedulable",
    "exited",
    "timeout",
    "api_error",
    "deleted",
    "error",
)
LOGIN_STATUSES = ("success", "failure", "throttled")
CULL_REASONS = ("idle", "max_age")
# The windows of podgate_active_users, as JupyterHub's active_users{period}.
ACTIVE_PERIODS: tuple[tuple[str, float], ...] = (
    ("24h", 24 * 3600.0),
    ("7d", 7 * 24 * 3600.0),
    ("30d", 30 * 24 * 3600.0),
)

# The Kubernetes calls podgate makes, with the status of a good answer: their
# series exist from the start. A call not listed still counts, on first use.
KUBE_CALLS: tuple[tuple[str, str, int], ...] = (
    ("create", "pods", 201),
    ("get", "pods", 200),
    ("patch", "pods", 200),
    ("delete", "pods", 200),
    ("list", "pods", 200),
    ("watch", "pods", 200),
    ("list", "events", 200),
    ("watch", "events", 200),
    ("create", "persistentvolumeclaims", 201),
    ("create", "namespaces", 201),
)

# Seconds. A spawn takes seconds to minutes (image pulls); JupyterHub's buckets.
SPAWN_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0)
STOP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LOGIN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KUBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# KubeApi reports status 0 when no answer came (refused, reset, timed out).
NO_ANSWER = "none"


class WatchHealth(Protocol):
    """What a watch (control.informer.Informer) shows about itself."""

    @property
    def last_event_time(self) -> float: ...

    @property
    def restarts(self) -> int: ...


@dataclass(frozen=True)
class ControlSources:
    """Where the scrape-time figures come from; handed over by the wiring."""

    running_servers: Callable[[], int]
    total_users: Callable[[], int]
    # active_users(since epoch seconds) -> users with traffic since then
    active_users: Callable[[float], int]
    watches: Mapping[str, WatchHealth]


class ControlMetrics(Collector):
    """The control plane's metrics, and the observers that move them; a collector on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.spawn_duration = HistogramSeries(
            "podgate_server_spawn_duration_seconds",
            "Time from the start of a spawn to a Ready server, a failure or a refusal.",
            SPAWN_BUCKETS,
            ["status", "reason"],
        )
        self.stop_duration = HistogramSeries(
            "podgate_server_stop_duration_seconds",
            "Time the API took to accept the deletion of a user's pod.",
            STOP_BUCKETS,
        )
        self.login_duration = HistogramSeries(
            "podgate_login_duration_seconds",
            "Time to answer a sign-in, by outcome.",
            LOGIN_BUCKETS,
            ["status"],
        )
        self.kube_requests = CounterSeries(
            "podgate_kube_api_requests",
            "Requests to the Kubernetes API, by verb, resource and status code.",
            ["verb", "resource", "code"],
        )
        self.kube_duration = HistogramSeries(
            "podgate_kube_api_request_duration_seconds",
            "Time to the answer's status line from the Kubernetes API, by verb and resource.",
            KUBE_BUCKETS,
            ["verb", "resource"],
        )
        self.culled = CounterSeries(
            "podgate_culled_servers",
            "User servers stopped by the idle culler, by reason.",
            ["reason"],
        )
        self.sources: ControlSources | None = None
        self._create_known_series()
        registry.register(self)

    def track(self, sources: ControlSources) -> None:
        """From now on the scrape reads running servers, users and watches from `sources`."""
        self.sources = sources

    # -- observers: the signatures the control plane's hooks expect ------------------

    def spawn_observed(self, outcome: str, user: str, seconds: float, reason: str) -> None:
        """control.spawner.SpawnObserver: ready, failed, limited or stopped."""
        if outcome == "ready":
            self.spawn_duration.observe(seconds, "success", "")
        elif outcome == "failed":
            self.spawn_duration.observe(seconds, "failure", reason)
        elif outcome == "limited":
            self.spawn_duration.observe(seconds, "limited", "")
        elif outcome == "stopped":
            self.stop_duration.observe(seconds)

    def login_observed(self, status: str, seconds: float) -> None:
        """control.web.context.LoginObserver: success, failure or throttled."""
        self.login_duration.observe(seconds, status)

    def kube_request_observed(self, verb: str, resource: str, code: int, seconds: float) -> None:
        """control.k8s.RequestObserver; code 0 (no answer came) is reported as "none"."""
        self.kube_requests.inc(verb, resource, str(code) if code else NO_ANSWER)
        self.kube_duration.observe(seconds, verb, resource)

    def server_culled(self, reason: str) -> None:
        """The culler stopped a server: reason idle or max_age."""
        self.culled.inc(reason)

    # -- the collector ------------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        # Names only (for the registry's duplicate check): no source is read here.
        yield from self._event_families()
        yield from _state_families()

    def collect(self) -> Iterator[Metric]:
        yield from self._event_families()
        sources = self.sources
        if sources is None:
            return  # proxy-only: no control plane, no such figures
        running, users, active, last_event, restarts = _state_families()
        running.add_metric([], sources.running_servers())
        users.add_metric([], sources.total_users())
        now = time.time()
        for period, seconds in ACTIVE_PERIODS:
            active.add_metric([period], sources.active_users(now - seconds))
        for resource, watch in sorted(sources.watches.items()):
            last_event.add_metric([resource], watch.last_event_time)
            restarts.add_metric([resource], watch.restarts)
        yield from (running, users, active, last_event, restarts)

    def _event_families(self) -> list[Metric]:
        series = (
            self.spawn_duration,
            self.stop_duration,
            self.login_duration,
            self.kube_requests,
            self.kube_duration,
            self.culled,
        )
        return [s.family() for s in series]

    def _create_known_series(self) -> None:
        self.stop_duration.create()
        self.spawn_duration.create("success", "")
        self.spawn_duration.create("limited", "")
        for reason in SPAWN_FAILURE_REASONS:
            self.spawn_duration.create("failure", reason)
        for status in LOGIN_STATUSES:
            self.login_duration.create(status)
        for verb, resource, code in KUBE_CALLS:
            self.kube_requests.create(verb, resource, str(code))
            self.kube_duration.create(verb, resource)
        for reason in CULL_REASONS:
            self.culled.create(reason)


def _state_families() -> tuple[
    GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily
]:
    """The families read from ControlSources at scrape time, empty."""
    return (
        GaugeMetricFamily(
            "podgate_running_servers", "User servers whose pod is Ready, as the watch sees it."
        ),
        GaugeMetricFamily("podgate_total_users", "Users the hub knows of."),
        GaugeMetricFamily(
            "podgate_active_users",
            "Users whose server saw traffic within the period.",
            labels=["period"],
        ),
        GaugeMetricFamily(
            "podgate_watch_last_event_timestamp_seconds",
            "Unix time of the last event or bookmark of the watch; 0 before the first.",
            labels=["resource"],
        ),
        CounterMetricFamily(
            "podgate_watch_restarts",
            "Times the watch started over with a fresh list (errors, 410, restart timer).",
            labels=["resource"],
        ),
    )
