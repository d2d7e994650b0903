"""The public listener's certificate: when it expires, its reloads, and ACME orders.

`podgate_tls_certificate_expiry_timestamp_seconds` is the alert to have: page
someone when it is less than a week or two away (renewal failed, or the files
were never rotated). Depends on prometheus_client only.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from metrics.series import CounterSeries

RELOAD_OUTCOMES = ("loaded", "reloaded", "refused")
ORDER_OUTCOMES = ("issued", "failed", "current")


class TlsMetrics(Collector):
    """Observers the wiring hands to edge.tls and control.acme."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.expiry: float | None = None  # Unix time the certificate in force expires
        self.source = ""
        self.loads = CounterSeries(
            "podgate_tls_certificate_loads",
            "Certificate loads on the public listener by outcome (loaded at start, "
            "reloaded after a change, refused: a bad new pair, the old one kept).",
            ["outcome"],
        )
        self.orders = CounterSeries(
            "podgate_tls_acme_orders",
            "ACME certificate orders by outcome (issued, failed, current: another "
            "replica's certificate taken from the Secret).",
            ["outcome"],
        )
        for outcome in RELOAD_OUTCOMES:
            self.loads.create(outcome)
        for outcome in ORDER_OUTCOMES:
            self.orders.create(outcome)
        registry.register(self)

    def certificate(self, expires: float, outcome: str, source: str) -> None:
        """A certificate is in force (or stays, outcome refused) and expires at `expires`."""
        self.expiry = expires
        self.source = source
        self.loads.inc(outcome)

    def order(self, outcome: str) -> None:
        self.orders.inc(outcome)

    def collect(self) -> Iterator[Metric]:
        if self.expiry is not None:
            gauge = GaugeMetricFamily(
                "podgate_tls_certificate_expiry_timestamp_seconds",
                "When the certificate the public listener serves expires (Unix time).",
                labels=["source"],
            )
            gauge.add_metric([self.source], self.expiry)
            yield gauge
        yield self.loads.family()
        yield self.orders.family()
