"""Hot-path counters of the edge, as plain Python numbers.

The proxy bumps these with no lock and no label lookup; the Prometheus
collector (metrics.registry) turns them into metric families only when
/metrics is scraped. Nothing here does I/O.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

# Request duration buckets in seconds: fine at the fast end, where a proxy lives.
DURATION_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

ROUTE_KINDS = ("user", "api", "config", "hub", "none")
UPSTREAM_ERROR_KINDS = ("refused", "reset", "timeout", "protocol")
COOKIE_REJECT_REASONS = ("malformed", "bad_signature", "expired", "wrong_user", "revoked")


class EdgeStats:
    """Counters the edge updates per request; read by the collector at scrape time."""

    def __init__(self) -> None:
        # (method, status code, route kind) -> count
        self.requests: defaultdict[tuple[str, int, str], int] = defaultdict(int)
        # per route kind: bucket counts (len(DURATION_BUCKETS) + 1 for +Inf), sum
        self.duration_buckets: dict[str, list[int]] = {
            kind: [0] * (len(DURATION_BUCKETS) + 1) for kind in ROUTE_KINDS
        }
        self.duration_sum: dict[str, float] = dict.fromkeys(ROUTE_KINDS, 0.0)
        self.upstream_errors: dict[str, int] = dict.fromkeys(UPSTREAM_ERROR_KINDS, 0)
        self.cookie_rejections: dict[str, int] = dict.fromkeys(COOKIE_REJECT_REASONS, 0)
        self.websockets_active = 0
        self.websockets_total = 0
        self.bytes_to_upstream = 0  # client -> pod
        self.bytes_to_client = 0  # pod -> client

    def request_done(self, method: str, status: int, kind: str, seconds: float) -> None:
        self.requests[(method, status, kind)] += 1
        buckets = self.duration_buckets.get(kind)
        if buckets is None:
            return
        buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.duration_sum[kind] += seconds

    def upstream_error(self, kind: str) -> None:
        self.upstream_errors[kind] = self.upstream_errors.get(kind, 0) + 1

    def cookie_rejected(self, reason: str) -> None:
        self.cookie_rejections[reason] = self.cookie_rejections.get(reason, 0) + 1

    def websocket_opened(self) -> None:
        self.websockets_active += 1
        self.websockets_total += 1

    def websocket_closed(self) -> None:
        self.websockets_active -= 1
