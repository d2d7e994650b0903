"""The byte pump of a relayed WebSocket: browser and pod joined by protocol callbacks.

After both handshakes, bytes read from one side are written to the other
as they come: no frame is decoded, so text, binary, fragments, pings,
close codes and permessage-deflate all pass untouched. The pump works in
transport callbacks alone: an idle socket costs no Task and no buffer.
Each direction has flow control (when the receiving side's write buffer is
full, reading from the sending side pauses), and bytes in either direction
count as activity on the route.

The browser side stays owned by aiohttp's server protocol; the pump joins
it through the seam aiohttp's own WebSocketResponse uses: the protocol's
``set_parser`` for incoming bytes, ``pause_reading``/``resume_reading`` for
flow control and the response writer's ``drain`` for outgoing backpressure.
Why that seam and not asyncio's public ``transport.set_protocol`` after the
101: bytes a browser sends right behind its handshake (in the same packet,
or before the handler swaps the protocol) have already been read by
aiohttp's protocol, which keeps them for the next parser it is given;
set_protocol loses them, and aiohttp then parses them as a new request (a
400). Tried on aiohttp 3.14: with the head and b"EARLY" in one write, a
protocol set after the 101 saw only the bytes sent after it; the frame sent
with the handshake must reach the pod (tests/edge/test_websocket_flow.py).
set_parser, pause_reading and resume_reading are public names on the object
``request.protocol`` returns; no underscore attribute of aiohttp is touched
(tests/test_public_aiohttp.py).
When the server stops, `go_away` closes both sides with 1001 at a frame
boundary (edge.websocket.farewell follows the boundaries in the relayed bytes).
It never replaces aiohttp internals and never decodes messages.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Protocol, cast

from aiohttp.abc import AbstractStreamWriter

from edge.websocket.farewell import LINGER, REASON, Farewell
from metrics import EdgeStats
from routes import Route


class _ClientProtocol(Protocol):
    """The parts of aiohttp's server protocol (web_protocol.RequestHandler) the pump uses."""

    def pause_reading(self) -> None: ...
    def resume_reading(self, resume_parser: bool = True) -> None: ...


# A pod whose node vanishes sends no FIN: TCP keepalive notices within about
# two minutes instead of the kernel's default two hours, so the browser's
# side is closed too rather than held forever.
_KEEPALIVE_OPTIONS = (
    ("TCP_KEEPIDLE", 60),
    ("TCP_KEEPINTVL", 15),
    ("TCP_KEEPCNT", 4),
)


def _enable_keepalive(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in _KEEPALIVE_OPTIONS:
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
    except OSError:
        pass  # a socket that refuses keepalive still relays


class PodLink(asyncio.Protocol):
    """The edge's own connection to a pod: buffers the handshake answer, then feeds a ByteRelay."""

    __slots__ = ("_buffer", "_closed", "_relay", "_waiter", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._relay: ByteRelay | None = None

    # -- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        _enable_keepalive(transport.get_extra_info("socket"))

    def data_received(self, data: bytes) -> None:
        if self._relay is not None:
            self._relay.from_pod(data)
            return
        self._buffer += data
        self._wake()

    def eof_received(self) -> bool:
        # No half-open WebSockets: a pod that stops sending is gone.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.transport = None
        if self._relay is not None:
            self._relay.pod_lost()
        self._wake()

    def pause_writing(self) -> None:
        if self._relay is not None:
            self._relay.pod_write_paused()

    def resume_writing(self) -> None:
        if self._relay is not None:
            self._relay.pod_write_resumed()

    # -- before the relay: reading the pod's answer -------------------------
    @property
    def buffered(self) -> bytearray:
        return self._buffer

    @property
    def closed(self) -> bool:
        return self._closed

    async def wait_for_data(self) -> None:
        """Wait until more bytes arrive or the connection ends (the caller bounds the time)."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take_buffered(self, limit: int | None = None) -> bytes:
        if limit is None or limit >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = bytes(self._buffer[:limit])
            del self._buffer[:limit]
        return data

    def attach(self, relay: ByteRelay) -> None:
        """From now on every byte from the pod goes to `relay`; anything buffered goes first."""
        self._relay = relay
        if self._buffer:
            relay.from_pod(self.take_buffered())
        if self._closed:
            relay.pod_lost()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ByteRelay:
    """Joins the browser's connection and a PodLink after a 101, both directions, in callbacks.

    Given to aiohttp's server protocol as its payload parser (``feed_data``,
    ``feed_eof``), so browser bytes arrive here. The handler coroutine that
    owns the request sits in `run` and only wakes to drain the browser's
    write buffer or to finish.
    """

    __slots__ = (
        "_client",
        "_client_transport",
        "_done",
        "_draining",
        "_farewell",
        "_high_water",
        "_linger",
        "_pod",
        "_pod_transport",
        "_route",
        "_stats",
        "_wakeup",
    )

    def __init__(
        self,
        client: _ClientProtocol,
        client_transport: asyncio.Transport,
        pod: PodLink,
        pod_transport: asyncio.Transport,
        stats: EdgeStats,
        high_water: int,
        route: Route,
    ) -> None:
        self._client = client
        self._route = route
        self._client_transport = client_transport
        self._pod = pod
        self._pod_transport = pod_transport
        self._stats = stats
        self._high_water = high_water
        self._done = False
        self._draining = False
        self._wakeup: asyncio.Future[None] | None = None
        self._farewell = Farewell()
        self._linger: asyncio.TimerHandle | None = None
        pod_transport.set_write_buffer_limits(high=high_water)

    @property
    def done(self) -> bool:
        return self._done

    # -- browser -> pod (aiohttp calls these as the payload parser) -----------
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if not self._done:
            self._stats.bytes_to_upstream += len(data)
            # Traffic on a socket is activity, as CHP counts it: the idle
            # culler must not stop a server whose notebook is in use.
            self._route.last_activity = time.time()
            data = self._farewell.browser_bytes(data)
            if data:
                self._pod_transport.write(data)
            if self._farewell.leaving and self._farewell.over:
                self.finish()
        return False, b""

    def feed_eof(self) -> None:
        # aiohttp calls this when the browser's connection is lost.
        self.finish()

    def pod_write_paused(self) -> None:
        if not self._done:
            self._client.pause_reading()

    def pod_write_resumed(self) -> None:
        if not self._done:
            self._client.resume_reading(resume_parser=False)

    # -- pod -> browser --------------------------------------------------------
    def from_pod(self, data: bytes) -> None:
        if self._done:
            return
        self._stats.bytes_to_client += len(data)
        self._route.last_activity = time.time()
        farewell = self._farewell
        data = farewell.pod_bytes(data)
        if farewell.leaving:
            if data:
                self._client_transport.write(data)
            if farewell.over:
                self.finish()
            return
        transport = self._client_transport
        transport.write(data)
        if not self._draining and transport.get_write_buffer_size() > self._high_water:
            # The browser reads slower than the pod writes: stop reading the
            # pod until the handler coroutine has drained the browser side.
            self._draining = True
            self._pod_transport.pause_reading()
            self._wake()

    def drained(self) -> None:
        """The browser's write buffer has emptied: read from the pod again."""
        self._draining = False
        if not self._done:
            self._pod_transport.resume_reading()

    def pod_lost(self) -> None:
        self.finish()

    # -- both ----------------------------------------------------------------
    async def run(self, client_writer: AbstractStreamWriter) -> None:
        """Wait until the relay ends, draining the browser side whenever it fills up.

        The only coroutine of a relayed socket: it sleeps on one future while
        the callbacks move bytes, so an idle socket costs no extra Task.
        """
        self._stats.websocket_opened()
        try:
            while not self._done:
                if not self._draining:
                    self._wakeup = asyncio.get_running_loop().create_future()
                    await self._wakeup
                    self._wakeup = None
                if self._draining and not self._done:
                    try:
                        await client_writer.drain()
                    except ConnectionError:
                        break
                    self.drained()
        finally:
            self._wakeup = None
            self.finish()
            self._stats.websocket_closed()

    def go_away(self, reason: bytes = REASON) -> None:
        """The server stops (or the session ended): 1001 Going Away to both sides, then
        close once they answer."""
        if self._done or self._farewell.leaving:
            return
        to_pod, to_browser = self._farewell.leave(reason)
        if to_pod:
            self._pod_transport.write(to_pod)
        if to_browser:
            self._client_transport.write(to_browser)
        self._linger = asyncio.get_running_loop().call_later(LINGER, self.finish)

    def finish(self) -> None:
        """Close both sides; whatever each side still has buffered is flushed first."""
        if self._done:
            return
        self._done = True
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._pod.close()
        if not self._client_transport.is_closing():
            self._client_transport.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self._wakeup
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
