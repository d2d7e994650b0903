"""The byte pump of a WebSocket the fast lane switched: two transports joined by callbacks.

After the 101 each transport gets a `PumpEnd` as its protocol (set_protocol):
bytes read on one end are written to the other as they come, a full write
buffer on one end pauses reading on the other, and a close (or an abort) of
either end closes (or aborts) the other. An idle socket costs the two
transports, two PumpEnds and one `Pump`: no Task, no coroutine, no buffer.

The pump stays in the lane's connections until it ends, so stopping the server
closes it: with a 1001 close frame each way, put at a frame boundary that
edge.websocket.farewell follows in the relayed bytes. It never decodes a message
and never keeps bytes of its own.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

from edge.fastlane.lane import Lane
from edge.websocket.farewell import LINGER, REASON, Farewell
from routes import Route

# Traffic bumps route.last_activity at most this often (seconds): the culler
# needs minutes of precision, not one time() call per packet.
ACTIVITY_EVERY = 1.0


class Pump:
    """What both ends of one switched WebSocket share."""

    __slots__ = ("browser", "done", "farewell", "lane", "linger", "pod", "route", "stats")

    def __init__(self, lane: Lane, route: Route) -> None:
        self.lane = lane
        self.stats = lane.stats
        self.route = route
        self.done = False
        self.farewell = Farewell()
        self.linger: asyncio.TimerHandle | None = None
        self.browser = PumpEnd(self, to_pod=True)
        self.pod = PumpEnd(self, to_pod=False)
        self.browser.other = self.pod
        self.pod.other = self.browser

    def join(
        self,
        browser: asyncio.Transport,
        pod: asyncio.Transport,
        high_water: int,
        browser_early: bytes,
        pod_early: bytes,
    ) -> None:
        """Take both transports over; bytes each side sent early are relayed first."""
        self.stats.websocket_opened()
        self.lane.connections.add(self)
        for end, transport in ((self.browser, browser), (self.pod, pod)):
            end.transport = transport
            transport.set_write_buffer_limits(high=high_water)
            transport.set_protocol(end)
        if browser_early:
            self.browser.data_received(browser_early)
        if pod_early:
            self.pod.data_received(pod_early)
        for end in (self.browser, self.pod):
            transport = cast(asyncio.Transport, end.transport)
            if transport.is_closing():
                self.finish(None)  # a side gone during the switch takes the other along
                return
            transport.resume_reading()

    def close_when_idle(self, reason: bytes = REASON) -> None:
        """The server stops (or the session ended): 1001 Going Away both ways, then both
        ends close."""
        if self.done or self.farewell.leaving:
            return
        to_pod, to_browser = self.farewell.leave(reason)
        for data, end in ((to_pod, self.pod), (to_browser, self.browser)):
            if data and end.transport is not None:
                end.transport.write(data)
        self.linger = self.lane.loop.call_later(LINGER, self.finish, None)

    def abort(self) -> None:
        self.finish(ConnectionAbortedError("the server stopped"))

    def active(self) -> None:
        now = time.time()
        route = self.route
        if now - route.last_activity >= ACTIVITY_EVERY:
            route.last_activity = now

    def finish(self, exc: Exception | None) -> None:
        """Both ends go: closed (buffered bytes flushed first), or aborted after an error."""
        if self.done:
            return
        self.done = True
        if self.linger is not None:
            self.linger.cancel()
            self.linger = None
        self.stats.websocket_closed()
        self.lane.forget(self)
        self.lane.edge.open_websockets.closed(self)
        for end in (self.browser, self.pod):
            transport = end.transport
            if transport is not None and not transport.is_closing():
                if exc is None:
                    transport.close()
                else:
                    transport.abort()


class PumpEnd(asyncio.Protocol):
    """One side's transport: what it reads goes to the other side's transport."""

    __slots__ = ("other", "pump", "to_pod", "transport")

    def __init__(self, pump: Pump, *, to_pod: bool) -> None:
        self.pump = pump
        self.to_pod = to_pod
        self.transport: asyncio.Transport | None = None
        self.other: PumpEnd = self

    def data_received(self, data: bytes) -> None:
        pump = self.pump
        target = self.other.transport
        if pump.done or target is None:
            return
        farewell = pump.farewell
        data = farewell.browser_bytes(data) if self.to_pod else farewell.pod_bytes(data)
        if farewell.leaving:
            if data:
                target.write(data)
            if farewell.over:
                pump.finish(None)
            return
        target.write(data)
        if self.to_pod:
            pump.stats.bytes_to_upstream += len(data)
        else:
            pump.stats.bytes_to_client += len(data)
        pump.active()

    def eof_received(self) -> bool:
        return False  # no half-open WebSockets: a side that stops sending is gone

    def connection_lost(self, exc: Exception | None) -> None:
        self.pump.finish(exc)

    def pause_writing(self) -> None:
        # This side reads slower than the other sends: stop reading the other.
        source = self.other.transport
        if source is not None and not self.pump.done:
            source.pause_reading()

    def resume_writing(self) -> None:
        source = self.other.transport
        if source is not None and not self.pump.done:
            source.resume_reading()
