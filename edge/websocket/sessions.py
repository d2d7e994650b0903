"""Open WebSockets and the request that opened each, so they end when that session ends.

A WebSocket is authorized once, at its handshake. When sessions may have
ended (a sign-out everywhere, a reload that removes users: the wiring calls
Edge.sessions_changed), every open WebSocket whose handshake would now be
refused is told 1001 Going Away both ways ("session ended"), as at shutdown. Both lanes
register here: aiohttp's ByteRelay (through TrackedRelays) and the fast
lane's Pump.

No I/O and no routing of its own: whether a handshake would still pass is
the caller's question (Edge.forwardable).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from edge.websocket.farewell import SESSION_ENDED
from edge.websocket.relay import ByteRelay

# (host, raw path, session Cookie header values) -> whether that request is still forwardable
StillAllowed = Callable[[str, str, Sequence[str]], bool]


class _Opened(NamedTuple):
    close: Callable[[], None]  # 1001 Going Away to both sides
    host: str
    raw_path: str
    cookies: tuple[str, ...]


class OpenWebSockets:
    """Every relayed WebSocket (keyed by its relay object) with the request that opened it."""

    def __init__(self) -> None:
        self._open: dict[object, _Opened] = {}

    def __len__(self) -> int:
        return len(self._open)

    def opened(
        self,
        key: object,
        close: Callable[[], None],
        host: str,
        raw_path: str,
        cookies: Sequence[str],
    ) -> None:
        self._open[key] = _Opened(close, host, raw_path, tuple(cookies))

    def closed(self, key: object) -> None:
        self._open.pop(key, None)

    def recheck(self, still_allowed: StillAllowed) -> int:
        """Close every WebSocket whose opening request would be refused now; how many."""
        ended = [
            (key, opened)
            for key, opened in self._open.items()
            if not still_allowed(opened.host, opened.raw_path, opened.cookies)
        ]
        for key, opened in ended:
            del self._open[key]
            opened.close()
        return len(ended)


class TrackedRelays:
    """What aiohttp's WebSocket relay joins while it runs: the edge's set of relays
    (told 1001 at shutdown) and, with its opening request, the open WebSockets."""

    def __init__(
        self,
        relays: set[ByteRelay],
        open_websockets: OpenWebSockets,
        host: str,
        raw_path: str,
        cookies: Sequence[str],
    ) -> None:
        self._relays = relays
        self._open = open_websockets
        self._request = (host, raw_path, tuple(cookies))

    def add(self, relay: ByteRelay) -> None:
        self._relays.add(relay)
        self._open.opened(relay, lambda: relay.go_away(SESSION_ENDED), *self._request)

    def discard(self, relay: ByteRelay) -> None:
        self._relays.discard(relay)
        self._open.closed(relay)
