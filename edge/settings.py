"""Everything the edge needs to know, typed, built once by the wiring from the config.

Nothing below the wiring reads raw config dicts or environment variables: the
edge only ever sees an EdgeSettings. This module holds plain data and must
never do I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Networks from CIDR strings ("10.0.0.0/8", "127.0.0.1"); ValueError names a bad one."""
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """How the edge talks to pods."""

    # Seconds to open a TCP connection to a pod; past it the pod counts as too slow (504).
    connect_timeout: float = 5.0
    # Seconds of silence from a pod while we wait for its response head or body (504).
    # None waits forever, which long-poll notebooks sometimes need.
    read_timeout: float | None = 300.0
    # Idle keep-alive connections kept per target; extra ones are closed on release.
    # As high as the concurrency one pod sees, or busy pods churn connections.
    max_idle_per_target: int = 1024
    # Seconds an idle pooled connection is kept before it is closed.
    idle_timeout: float = 30.0
    # Bytes buffered from a pod before its socket stops being read (backpressure).
    read_buffer: int = 2**16


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """The edge's settings; every field has a safe default so tests can build one in a line."""

    # Name of the signed session cookie; stripped before traffic goes to a pod.
    cookie_name: str = "podgate-session"
    # podgate's other cookies (the hub's CSRF cookie), named by the wiring: like the
    # session, a pod's Set-Cookie for any of them is dropped.
    hub_cookies: frozenset[str] = frozenset()
    # cookie_name and hub_cookies: the names a pod may never set (worked out once).
    reserved_cookies: frozenset[str] = field(init=False)
    # Admins may open other users' servers only when this is on (JupyterHub's admin_access).
    admin_access: bool = False
    admins: frozenset[str] = frozenset()
    # False is proxy-only mode: every path is routed by the table, like CHP.
    control_enabled: bool = True
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    # Peers whose X-Forwarded-* headers are believed and appended to; others are replaced.
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Seconds a browser has to send a whole request head once it began one (408 after).
    head_timeout: float = 20.0
    # Request heads one peer address may have under way at once (429 past it);
    # trusted proxies are exempt (edge.fastlane.slow_heads says why).
    incomplete_per_address: int = 64
    # Origins besides the public one whose pages may change things on users' servers
    # and open WebSockets to them (edge.origin), normalised by edge.origin.parse_origins.
    allowed_origins: frozenset[str] = frozenset()
    # Header carrying the pod's own token upstream; the value is route.data["token"].
    pod_token_header: str = "Authorization"
    pod_token_scheme: str = "token"
    # Where the control plane logs users in and starts their servers.
    login_path: str = "/hub/login"
    spawn_path: str = "/hub/spawn"
    hub_prefix: str = "/hub/"
    # Seconds of Strict-Transport-Security sent on every answer over TLS; 0 sends none.
    hsts_seconds: int = 0
    # WebSocket limits (edge.websocket.settings.WebSocketSettings); embedded here once it settles.
    websocket: Any = None

    def __post_init__(self) -> None:
        # Frozen: set once here so the per-response check reads one ready set.
        object.__setattr__(self, "reserved_cookies", self.hub_cookies | {self.cookie_name})

    def hsts_header(self) -> str | None:
        """The Strict-Transport-Security value for answers over TLS, or None."""
        return f"max-age={self.hsts_seconds}" if self.hsts_seconds > 0 else None

    def is_trusted_proxy(self, peer: str | None) -> bool:
        if not self.trusted_proxies or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_proxies)

    def may_access(self, session_user: str, route_user: str) -> bool:
        """Whether the session's user may use a server owned by `route_user`."""
        if session_user == route_user:
            return True
        return self.admin_access and session_user in self.admins
