"""One browser connection in the fast lane: the per-connection state machine.

Idle, it collects a request head; a head that edge.fastlane.head accepts and
whose route Edge.forwardable returns is relayed over a pooled pod connection:
the rewritten head, then exactly Content-Length body bytes as they arrive,
then the pod's response relayed as it arrives (its head checked by
edge.upstream.response, its body delimited by length, chunk framing or close).
A valid WebSocket handshake to a forwardable route is served here too
(edge.fastlane.websocket, then edge.fastlane.pump after the 101).
One request at a time; pipelined bytes wait in a bounded buffer. A head that
does not arrive in one read is timed and counted per peer (edge.fastlane.slow_heads:
408 when too slow, 429 past the cap). Anything the
fast lane does not serve hands the connection, with every byte buffered so far,
over to aiohttp's server for the rest of its life.

Backpressure both ways: a full pod socket pauses reading from the browser, a
full browser socket pauses reading from the pod. Failures before the response
head become edge.errors pages (503, 504, 502); after it, the browser connection
is cut off so the truncation shows. Metrics are counted as the aiohttp path
counts them.

This file holds the transport's callbacks and the end of each request; the
steps between are mixins of edge.fastlane.state.ConnectionState, one file
each: request_head, request_body, response_relay, websocket, handover
(edge/README.md has the states and who moves between them).

It never buffers a body whole, never forwards a request the head parser did not
accept, and never decides routing or authorization (Edge.forwardable does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

from edge.fastlane.handover import HandOver
from edge.fastlane.lane import KEEPALIVE_TIMEOUT, Lane
from edge.fastlane.request_body import BodyRelay
from edge.fastlane.request_head import HeadReading
from edge.fastlane.response_relay import ResponseRelay
from edge.fastlane.state import BUFFER_LIMIT, CLIENT_CLOSED, PAUSED_BUFFER, PAUSED_POD_FULL
from edge.fastlane.websocket import WebSocketUpgrades
from edge.upstream.response import Framing

# One logger for the connection, whichever file a step of it lives in.
log = logging.getLogger("edge.fastlane.protocol")


class FastLane(Lane):
    """The lane as the listener's protocol factory: one BrowserConnection per connection."""

    def __call__(self) -> BrowserConnection:
        return BrowserConnection(self)


class BrowserConnection(HeadReading, BodyRelay, ResponseRelay, WebSocketUpgrades, HandOver):
    """One browser connection served by the fast lane: its transport's callbacks, and
    the end of each request (the steps between are in the mixins' files)."""

    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        lane = self.lane
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) and peer else ""
        self.trusted = lane.settings.is_trusted_proxy(host)
        self.peer_xff = host.encode()
        lane.connections.add(self)
        self.idle_since = now = lane.loop.time()
        self.timer = lane.loop.call_at(now + KEEPALIVE_TIMEOUT, self._tick)

    def data_received(self, data: bytes) -> None:
        if self.request is None:
            if self.connecting is not None:
                self.buffer += data  # early bytes of a WebSocket being opened
                if len(self.buffer) > BUFFER_LIMIT:
                    self._pause(PAUSED_BUFFER)
                return
            self.buffer = self.buffer + data if self.buffer else data
            self._next_request()
            return
        left = self.body_left
        if left and self.pod is not None and not self.buffer:
            if len(data) <= left:
                self._send_body(data)
                return
            self._send_body(data[:left])
            data = data[left:]
        self.buffer += data
        if self.body_left and self.pod is not None:
            self._pump_body()
        if len(self.buffer) > BUFFER_LIMIT:
            self._pause(PAUSED_BUFFER)

    def eof_received(self) -> bool:
        return False  # a half-closed browser is a gone browser, as aiohttp treats it

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        lane = self.lane
        lane.forget(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._head_over()
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        self._release_slot()  # a task cancelled before it ran never gives it back itself
        if self.pod is not None:
            self.pod.close()  # never pool a half-used connection
            self.pod = None
        request = self.request
        if request is not None:
            log.debug("browser went away during %s %s", request.method, request.raw_path)
            lane.stats.request_done(
                request.method, CLIENT_CLOSED, self.kind, time.monotonic() - self.started
            )
            self.request = None

    def pause_writing(self) -> None:
        self.write_full = True
        if self.pod is not None:
            self.pod.pause_reading(True)

    def resume_writing(self) -> None:
        self.write_full = False
        if self.pod is not None:
            self.pod.pause_reading(False)

    def close_when_idle(self) -> None:
        """Close now if idle, else once the request in flight is answered (server stopping)."""
        if self.request is None:
            if self.transport is not None and not self.closed:
                self.transport.close()
        else:
            self.close_after = True

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def _tick(self) -> None:
        """Close a browser connection idle for too long; re-armed lazily, not per request."""
        loop = self.lane.loop
        if self.request is None and not self.closed and self.head_timer is None:
            deadline = self.idle_since + KEEPALIVE_TIMEOUT
            if loop.time() >= deadline and self.transport is not None:
                self.timer = None
                self.transport.close()
                return
        else:
            deadline = loop.time() + KEEPALIVE_TIMEOUT
        self.timer = loop.call_at(deadline, self._tick)

    def _finish(self) -> None:
        request = self.request
        assert request is not None
        lane = self.lane
        lane.stats.request_done(
            request.method, self.status, self.kind, time.monotonic() - self.started
        )
        close = self.close_after or self.framing is Framing.UNTIL_CLOSE
        self.request = None
        self.route = None
        self.idle_since = lane.loop.time()
        if self.closed or self.transport is None:
            return
        if close:
            self.transport.close()
            self.closed = True  # whatever still arrives is not a request to serve
            return
        self._unpause(PAUSED_POD_FULL)
        if len(self.buffer) <= BUFFER_LIMIT:
            self._unpause(PAUSED_BUFFER)
        if self.buffer:
            self._next_request()
