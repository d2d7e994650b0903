"""Request heads that arrive slowly: a deadline for each, a cap per peer address.

A head not complete within EdgeSettings.head_timeout of its first byte is
answered 408 and the connection closed. Heads under way at once from one peer
address are capped (EdgeSettings.incomplete_per_address): the one past the cap
is answered 429 and closed, so a client cannot park thousands of half-sent
heads.

The cap is keyed by the peer address, the only address known before a head is
complete (X-Forwarded-For is inside the head). A trusted proxy
(edge.trusted_proxies) is exempt from the cap, not from the deadline: it
carries many clients on its connections, and an ingress sends a head it has
read whole. Hub bodies are capped later by the client address behind the
trusted proxies (control.web.body_arrival).

Only the slow path comes here: a head that arrives in one read never does.
This module holds counts and bytes; it never touches a connection.
"""

from __future__ import annotations

from edge.errors import page
from edge.fastlane.pages import whole_response

TOO_SLOW = whole_response(
    page(408, "Request timeout", "The request took too long to arrive. Try again."),
    close=True,
)
TOO_MANY = whole_response(
    page(
        429,
        "Too many requests",
        "Too many requests are still arriving from your address. Try again in a moment.",
        retry_after=5,
    ),
    close=True,
)


class HeadsUnderWay:
    """Heads under way per peer address, refused past a cap; only peers with one are kept."""

    __slots__ = ("_counts", "per_address")

    def __init__(self, per_address: int) -> None:
        self.per_address = per_address
        self._counts: dict[bytes, int] = {}

    def begin(self, peer: bytes) -> bool:
        """Count a head begun by `peer`; False (not counted) when it already has its cap."""
        count = self._counts.get(peer, 0)
        if count >= self.per_address:
            return False
        self._counts[peer] = count + 1
        return True

    def end(self, peer: bytes) -> None:
        """A head counted by begin() is complete, refused, or its connection gone."""
        count = self._counts[peer] - 1
        if count:
            self._counts[peer] = count
        else:
            del self._counts[peer]

    def __len__(self) -> int:
        """Peers with a head under way (for tests: it goes back to 0)."""
        return len(self._counts)
