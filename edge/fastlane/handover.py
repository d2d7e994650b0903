"""Handing a fast-lane connection over to aiohttp's server, for good.

Whatever the fast lane does not serve (an unroutable or odd head, a request
that needs the session or an origin check answered, an oversized head) goes
to aiohttp with every byte read so far; aiohttp then serves the connection
with the full edge logic (edge.app) for the rest of its life.
"""

from __future__ import annotations

from edge.fastlane.state import ConnectionState


class HandOver(ConnectionState):
    """The connection given to aiohttp's server."""

    __slots__ = ()

    def _hand_over(self) -> None:
        """Give this connection, and every byte read so far, to aiohttp's server for good."""
        transport = self.transport
        assert transport is not None and self.request is None
        lane = self.lane
        lane.forget(self)
        lane.handed_over += 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._head_over()  # aiohttp answers an oversized head at once
        self.closed = True  # to this object; the connection lives on with aiohttp
        data, self.buffer = self.buffer, b""
        protocol = lane.hand_over()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self.paused:
            self.paused = 0
            transport.resume_reading()
        if self.write_full:
            protocol.pause_writing()  # the transport will call its resume_writing
        protocol.data_received(data)
