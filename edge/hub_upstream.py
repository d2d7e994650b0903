"""The hub as one more upstream: requests for the control plane relayed to it.

The control plane serves its hub app on its own event loop (the edge runs on
another thread: podgate.edge_thread), so the edge relays hub requests to it
as it relays requests to pods, both lanes through the edge's one pod pool, in
which the hub is one more target whose connections are sockets the hub
serves directly (`connect`: one end of a socketpair, an address nobody else
can dial). The hub therefore trusts what the edge tells
it in three headers only the edge sets, any copy a browser sent being dropped
first: the browser's address as the edge saw it (PEER_HEADER), the scheme of
its connection (SCHEME_HEADER) and the request's id.

Unlike a pod, the hub gets every header the browser sent but hop-by-hop ones
(its own session cookie included: the hub is podgate) and may set podgate's
cookies in its answers.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from multidict import CIMultiDict, CIMultiDictProxy

from edge.headers import FRAMING, HOP_BY_HOP, connection_listed
from routes import Route, RouteSource, Target

PEER_HEADER = "X-Podgate-Peer"
SCHEME_HEADER = "X-Podgate-Scheme"
_INTERNAL = frozenset((PEER_HEADER.lower(), SCHEME_HEADER.lower()))
# The pool's key for hub connections; never dialed (connections come from `connect`).
HUB_TARGET = Target.parse("http://podgate-hub")


@dataclass
class HubUpstream:
    """Where the edge sends hub requests: connections the hub serves, and the route to it."""

    connect: Callable[[], socket.socket]
    route: Route = field(init=False)

    def __post_init__(self) -> None:
        self.route = Route(path="/hub", target=HUB_TARGET, source=RouteSource.CONFIG)

    def dial(self) -> dict[tuple[str, int], Callable[[], socket.socket]]:
        """For the pod pool: hub connections are made by `connect`, never dialed by address."""
        return {(HUB_TARGET.host, HUB_TARGET.port): self.connect}


def hub_request_headers(
    incoming: CIMultiDictProxy[str], *, peer: str | None, scheme: str
) -> CIMultiDict[str]:
    """The browser's headers for the hub: hop-by-hop ones out, the edge's own facts in."""
    drop = (
        HOP_BY_HOP | (connection_listed(incoming) - FRAMING)
        if "connection" in incoming
        else HOP_BY_HOP
    ) | _INTERNAL
    out: CIMultiDict[str] = CIMultiDict(
        (name, value) for name, value in incoming.items() if name.lower() not in drop
    )
    out[PEER_HEADER] = peer or ""
    out[SCHEME_HEADER] = scheme
    return out
