"""The route table: longest whole-segment prefix match, as configurable-http-proxy does.

Routes are keyed by their normalised prefix ("/user/alice", root "/").
Lookup walks at most as many candidate prefixes as the deepest route has
segments, each one a dict probe, so its cost does not grow with the number
of routes. No I/O here: the edge and the control plane own the table's
inputs and outputs.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from routes.path import route_key, split_target


class RouteSource(Enum):
    """Who added a route, which decides who may change it and how it is authorised."""

    API = "api"  # the CHP-compatible API: an external hub authenticates, no cookie check
    PODS = "pods"  # derived from the user pod watch: the session cookie must name `user`
    CONFIG = "config"  # declared in the config file, authorised like PODS when `user` is set


@dataclass(frozen=True, slots=True)
class Target:
    """An upstream, parsed once when the route is added rather than per request."""

    url: str
    scheme: str
    host: str
    port: int
    base_path: str  # prepended to the request path, "" for none

    @classmethod
    def parse(cls, url: str) -> Target:
        scheme, host, port, base = split_target(url)
        return cls(url=url, scheme=scheme, host=host, port=port, base_path=base)


@dataclass(slots=True, eq=False)
class Route:
    path: str
    target: Target
    source: RouteSource
    user: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # Seconds since the epoch; the edge bumps it on traffic (a float store,
    # cheap enough for the hot path).
    last_activity: float = field(default_factory=time.time)

    @property
    def requires_session(self) -> bool:
        return self.user is not None and self.source is not RouteSource.API


class RouteTable:
    """Path-prefix routes with per-route data; optional host-based routing like CHP's."""

    def __init__(self, *, host_routing: bool = False) -> None:
        self.host_routing = host_routing
        self._routes: dict[str, Route] = {}
        self._depths: Counter[int] = Counter()  # routes per segment count
        self._max_depth = 0

    def __len__(self) -> int:
        return len(self._routes)

    def __iter__(self) -> Iterator[Route]:
        return iter(list(self._routes.values()))

    def get(self, path: str) -> Route | None:
        return self._routes.get(route_key(path))

    def add(
        self,
        path: str,
        target: str | Target,
        *,
        source: RouteSource,
        user: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Route:
        """Add or replace the route at `path`; raises ValueError for a bad target."""
        key = route_key(path)
        parsed = target if isinstance(target, Target) else Target.parse(target)
        route = Route(path=key, target=parsed, source=source, user=user, data=dict(data or {}))
        if key not in self._routes:
            self._count_depth(key, +1)
        self._routes[key] = route
        return route

    def remove(self, path: str) -> Route | None:
        key = route_key(path)
        route = self._routes.pop(key, None)
        if route is not None:
            self._count_depth(key, -1)
        return route

    def longest_match(self, path: str) -> Route | None:
        """The route whose prefix matches the most whole leading segments of `path`.

        `path` must already be normalised (routes.normalise_path).
        """
        routes = self._routes
        # Cut points after each of the first max_depth segments, deepest last.
        cuts: list[int] = []
        start = 1
        for _ in range(self._max_depth):
            slash = path.find("/", start)
            if slash < 0:
                if start < len(path):
                    cuts.append(len(path))
                break
            cuts.append(slash)
            start = slash + 1
        for cut in reversed(cuts):
            route = routes.get(path[:cut])
            if route is not None:
                return route
        return routes.get("/")

    def match_request(self, host: str, path: str) -> Route | None:
        """Match a request; with host routing the host name is the first segment (CHP)."""
        if self.host_routing:
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            return self.longest_match("/" + name.lower() + path)
        return self.longest_match(path)

    def inactive_since(self, cutoff: float) -> list[Route]:
        return [r for r in self._routes.values() if r.last_activity < cutoff]

    def _count_depth(self, key: str, delta: int) -> None:
        depth = 0 if key == "/" else key.count("/")
        self._depths[depth] += delta
        if self._depths[depth] <= 0:
            del self._depths[depth]
        self._max_depth = max(self._depths, default=0)
