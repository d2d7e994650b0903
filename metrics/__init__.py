"""Prometheus metrics of podgate: one object, its own registry, passed in.

Depends on prometheus_client only; no aiohttp, no Kubernetes.
"""

from metrics.edge_stats import EdgeStats
from metrics.registry import PodgateMetrics

__all__ = ["EdgeStats", "PodgateMetrics"]
