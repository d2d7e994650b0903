"""What the fast lane's connections of one public server share.

`Lane` holds the settings, the edge's pod pool, the counters and the set of
connections to close on stop. It is apart from edge.fastlane.protocol (whose
`FastLane` adds the protocol factory) so the WebSocket modules
(edge.fastlane.websocket, edge.fastlane.pump) can use it without importing the
connection state machine, which imports them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from edge.app import Edge
from edge.errors import UpstreamError
from edge.fastlane.head import header_kinds
from edge.fastlane.pages import error_page
from edge.fastlane.slow_heads import HeadsUnderWay

# Seconds an idle browser connection is kept open (aiohttp's default too).
KEEPALIVE_TIMEOUT = 75.0


class Served(Protocol):
    """A connection the lane still serves: closed (gently or not) when the server stops."""

    def close_when_idle(self) -> None: ...
    def abort(self) -> None: ...


class Lane:
    """What every browser connection of one public server shares."""

    def __init__(
        self,
        edge: Edge,
        hand_over: Callable[[], asyncio.Protocol],
        loop: asyncio.AbstractEventLoop,
        scheme: str = "http",
    ) -> None:
        settings = edge.settings
        self.edge = edge
        self.stats = edge.stats
        self.settings = settings
        self.hand_over = hand_over
        self.loop = loop
        self.scheme = scheme  # "https" when the listener terminates TLS (edge.tls)
        # Lines every response of the lane carries beside its request id (HSTS over TLS).
        self.response_lines = edge.response_lines(scheme)
        self.pool = edge.pool  # the edge's one pool: the aiohttp lane draws on it too
        # The hub is one more target of that pool, reached over socketpairs (edge.hub_upstream).
        self.hub_route = edge.hub.route if edge.hub is not None else None
        self.reserved_cookies = settings.reserved_cookies
        self.request_ids = edge.request_ids
        self.cookie_name = settings.cookie_name.encode()
        self.header_kinds = header_kinds(settings.pod_token_header.lower().encode())
        self.token_prefix = f"{settings.pod_token_header}: {settings.pod_token_scheme} ".encode()
        # Browser connections, and switched WebSockets (edge.fastlane.pump), to close on stop.
        self.connections: set[Served] = set()
        self.drained: asyncio.Event | None = None  # set once no connection is left (closing)
        self.handed_over = 0  # connections given to aiohttp, for tests and curiosity
        self.heads = HeadsUnderWay(settings.incomplete_per_address)
        self.head_timeout = settings.head_timeout
        self._pages: dict[tuple[int, str, bool], bytes] = {}

    def forget(self, connection: Served) -> None:
        self.connections.discard(connection)
        if self.drained is not None and not self.connections:
            self.drained.set()

    def page(self, error: UpstreamError, close: bool) -> bytes:
        """The error page for `error`, rendered once per kind."""
        key = (error.status, type(error).__name__, close)
        page = self._pages.get(key)
        if page is None:
            page = self._pages[key] = error_page(error, close=close, pages=self.edge.pages)
        return page
