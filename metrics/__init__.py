"""Prometheus metrics of podgate: one object, its own registry, passed in.

Depends on prometheus_client only; no aiohttp, no Kubernetes.
"""

from metrics.control_metrics import ControlMetrics, ControlSources, WatchHealth
from metrics.edge_stats import EdgeStats
from metrics.loop_lag import LoopLagProbe
from metrics.registry import PodgateMetrics
from metrics.tls_metrics import TlsMetrics

__all__ = [
    "ControlMetrics",
    "ControlSources",
    "EdgeStats",
    "LoopLagProbe",
    "PodgateMetrics",
    "TlsMetrics",
    "WatchHealth",
]
