"""The route table: which path prefix goes to which target, with per-route data.

Pure data structures: stdlib only, no I/O, no aiohttp, no Kubernetes.
"""

from routes.path import normalise_path, split_target
from routes.table import Route, RouteSource, RouteTable, Target

__all__ = ["Route", "RouteSource", "RouteTable", "Target", "normalise_path", "split_target"]
