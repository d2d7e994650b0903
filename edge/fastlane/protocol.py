"""One browser connection in the fast lane: the per-connection state machine.

Idle, it collects a request head; a head that edge.fastlane.head accepts and
whose route Edge.forwardable returns is relayed over a pooled pod connection:
the rewritten head, then exactly Content-Length body bytes as they arrive,
then the pod's response relayed as it arrives (its head checked by
edge.fastlane.response, its body delimited by length, chunk framing or close).
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

It never buffers a body whole, never forwards a request the head parser did not
accept, and never decides routing or authorization (Edge.forwardable does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

from edge.app import route_kind
from edge.errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from edge.fastlane.head import (
    MAX_HEAD,
    RequestHead,
    forwarded_lines,
    origin_claims,
    parse_request,
    upstream_head,
)
from edge.fastlane.lane import KEEPALIVE_TIMEOUT, Lane
from edge.fastlane.response import (
    MAX_RESPONSE_HEAD,
    ChunkedFraming,
    Framing,
    Garbage,
    parse_response,
)
from edge.fastlane.slow_heads import TOO_MANY, TOO_SLOW
from edge.fastlane.upstream import Address, PodConnection
from edge.fastlane.websocket import is_handshake, open_websocket, upgrade_request
from edge.origin import SAFE_METHODS
from edge.request_id import well_formed
from routes import Route

log = logging.getLogger(__name__)

# Bytes a browser may send ahead (pipelined requests, body not yet sendable)
# before its socket stops being read.
BUFFER_LIMIT = 2**16
CLIENT_CLOSED = 499
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE"))

# Why reading from the browser is paused (a bit each).
_PAUSED_BUFFER = 1
_PAUSED_POD_FULL = 2


class FastLane(Lane):
    """The lane as the listener's protocol factory: one BrowserConnection per connection."""

    def __call__(self) -> BrowserConnection:
        return BrowserConnection(self)


class BrowserConnection(asyncio.Protocol):
    """The state of one browser connection served by the fast lane."""

    __slots__ = (
        "body_left",
        "buffer",
        "chunks",
        "close_after",
        "closed",
        "connecting",
        "counted",
        "forwarded",
        "forwarded_host",
        "framing",
        "head_sent",
        "head_timer",
        "idle_since",
        "kind",
        "lane",
        "paused",
        "peer_xff",
        "pod",
        "pod_head",
        "pod_keep",
        "pod_reused",
        "queued_for",
        "request",
        "request_id",
        "reserved_for",
        "resp_buf",
        "resp_left",
        "retried",
        "route",
        "started",
        "status",
        "timer",
        "transport",
        "trusted",
        "websocket",
        "write_full",
    )

    def __init__(self, lane: FastLane) -> None:
        self.lane = lane
        self.transport: asyncio.Transport | None = None
        self.buffer = b""  # browser bytes not yet consumed (rest of a body, pipelined requests)
        self.paused = 0
        self.write_full = False
        self.closed = False
        self.trusted = False
        self.peer_xff = b""
        self.forwarded_host = ""  # the Host the cached X-Forwarded-* lines were made for
        self.forwarded = b""
        self.idle_since = 0.0
        self.timer: asyncio.TimerHandle | None = None
        # Set while a head is under way that did not come in one read (slow path only).
        self.head_timer: asyncio.TimerHandle | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.queued_for: Address | None = None  # waiting in the pool's queue for this target
        self.reserved_for: Address | None = None  # holding one of the pool's opening slots
        self._reset()

    def _reset(self) -> None:
        self.request: RequestHead | None = None
        self.request_id = ""
        self.route: Route | None = None
        self.kind = "none"
        self.started = 0.0
        self.body_left = 0
        self.pod: PodConnection | None = None
        self.pod_head = b""
        self.pod_reused = False
        self.pod_keep = False
        self.retried = False
        self.resp_buf = b""
        self.head_sent = False
        self.status = 0
        self.framing = Framing.NONE
        self.resp_left = 0
        self.chunks: ChunkedFraming | None = None
        self.counted = 0
        self.close_after = False
        self.websocket = False

    # -- the browser side -------------------------------------------------

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
                    self._pause(_PAUSED_BUFFER)
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
            self._pause(_PAUSED_BUFFER)

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

    def _pause(self, reason: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= reason

    def _unpause(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

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

    # -- starting a request --------------------------------------------------

    def _next_request(self) -> None:
        buffer = self.buffer
        if not buffer or self.closed:
            return
        end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
        if end < 0:
            if len(buffer) >= MAX_HEAD + 4 or buffer.count(b"\n") != buffer.count(b"\r\n"):
                self._hand_over()  # aiohttp answers an oversized head, or bare LF line ends
            elif self.head_timer is None:
                self._head_begun()
            return
        if self.head_timer is not None:
            self._head_over()
        lane = self.lane
        head = parse_request(buffer, end, lane.cookie_name, self.trusted, lane.header_kinds)
        if head is None:
            self._hand_over()
            return
        route = lane.edge.forwardable(head.host, head.raw_path, head.cookies)
        if route is None:
            self._hand_over()
            return
        if (
            (head.upgrade or head.method not in SAFE_METHODS)
            and route.requires_session
            and not lane.edge.permits_origin(origin_claims(head, self.trusted, lane.scheme))
        ):
            self._hand_over()  # the full path answers the 403 (edge.errors)
            return
        if head.upgrade:
            if is_handshake(buffer, head, route):
                self._start_websocket(head, route)
            else:
                self._hand_over()  # aiohttp answers odd upgrades (400 and the like)
            return
        self._start(head, route)

    def _head_begun(self) -> None:
        """A head is under way and incomplete: time it, and count it against its peer."""
        lane = self.lane
        if not self.trusted and not lane.heads.begin(self.peer_xff):
            log.info(
                "%d request heads already under way from %s: 429",
                lane.heads.per_address,
                self.peer_xff.decode(),
            )
            self._refuse(TOO_MANY)
            return
        self.head_timer = lane.loop.call_later(lane.head_timeout, self._head_late)

    def _head_over(self) -> None:
        """The head under way is complete, or its connection leaves this object."""
        timer, self.head_timer = self.head_timer, None
        if timer is not None:
            timer.cancel()
            if not self.trusted:
                self.lane.heads.end(self.peer_xff)

    def _head_late(self) -> None:
        lane = self.lane
        self.head_timer = None
        if not self.trusted:
            lane.heads.end(self.peer_xff)
        log.info(
            "request head from %s not complete after %g s: 408",
            self.peer_xff.decode(),
            lane.head_timeout,
        )
        self._refuse(TOO_SLOW)

    def _refuse(self, answer: bytes) -> None:
        """Answer a head that will not be served, and close; later bytes are never read."""
        if self.transport is not None and not self.closed:
            self.transport.write(answer)
            self.transport.close()
        self.closed = True

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

    def _start(self, head: RequestHead, route: Route) -> None:
        lane = self.lane
        self.request = head
        self.request_id = self._request_id(head)
        self.route = route
        self.kind = route_kind(route)
        self.started = time.monotonic()
        route.last_activity = time.time()
        self.buffer = self.buffer[head.end :]
        self.body_left = head.content_length
        self.close_after = head.close
        # Per-request state; the rest is set as the response arrives.
        self.retried = False
        self.resp_buf = b""
        self.head_sent = False
        self.status = 0
        self.framing = Framing.NONE
        self.counted = 0
        target = route.target
        self.pod_head = self._pod_head(head, route)
        address = (target.host, target.port)
        pod = lane.pool.take_idle(address)
        if pod is not None:
            self._attach(pod, reused=True)
        else:
            self._connect(address)

    def _request_id(self, head: RequestHead) -> str:
        """A trusted proxy's well-formed id (the parser kept only those), else a new one."""
        offered = head.request_id
        if offered and well_formed(offered):
            return offered.decode("ascii")
        return self.lane.request_ids.new()

    def _id_line(self) -> bytes:
        return b"X-Request-Id: " + self.request_id.encode() + b"\r\n" + self.lane.response_lines

    def _pod_head(self, head: RequestHead, route: Route) -> bytes:
        """The head the pod gets, with edge.headers' rules (edge.fastlane.head)."""
        token = route.data.get("token")
        if self.trusted or head.host != self.forwarded_host:
            forwarded = forwarded_lines(head, self.peer_xff, self.lane.scheme)
            if not self.trusted:
                self.forwarded_host = head.host
                self.forwarded = forwarded
        else:
            forwarded = self.forwarded  # same browser, same Host: same lines as last time
        forwarded += b"\r\nX-Request-Id: " + self.request_id.encode()
        return upstream_head(
            head,
            route.target.base_path.encode(),
            forwarded,
            self.lane.token_prefix + token.encode() if isinstance(token, str) and token else None,
        )

    # -- WebSocket upgrades (edge.fastlane.websocket) ---------------------------

    def _start_websocket(self, head: RequestHead, route: Route) -> None:
        """Open the pod's WebSocket; early browser bytes wait in the buffer meanwhile.

        The browser is still read, so one that leaves cancels the handshake at once.
        """
        self.kind = route_kind(route)
        self.request_id = self._request_id(head)
        self.started = time.monotonic()
        self.idle_since = self.lane.loop.time()  # the keep-alive timer must not end the handshake
        route.last_activity = time.time()
        request = upgrade_request(self._pod_head(head, route))
        self.connecting = self.lane.loop.create_task(open_websocket(self, head, route, request))

    def websocket_failed(self, head: RequestHead, route: Route, error: UpstreamError) -> None:
        """No pod answer to relay: the fast lane's error page, then the connection closes."""
        self.connecting = None
        lane = self.lane
        lane.stats.upstream_error(error.kind)
        log.info(
            "upstream %s for WebSocket %s: %s",
            error.kind,
            head.raw_path,
            error,
            extra={"request_id": self.request_id, "status": error.status},
        )
        lane.stats.request_done(
            head.method, error.status, route_kind(route), time.monotonic() - self.started
        )
        if self.closed or self.transport is None:
            return
        self.transport.write(self._with_id(lane.page(error, True)))
        self.transport.close()
        self.closed = True

    def websocket_refused(
        self,
        head: RequestHead,
        route: Route,
        pod_transport: asyncio.BaseTransport | None,
        answer: bytes,
    ) -> None:
        """The pod did not switch: its answer is relayed as a plain response, then we close."""
        self.connecting = None
        target = route.target
        pod = PodConnection(self.lane.pool, (target.host, target.port))
        if pod_transport is None:
            pod.closed = True
        else:
            pod_transport.set_protocol(pod)
            pod.connection_made(pod_transport)
        if self.closed:
            pod.close()
            return
        self.request = head
        self.route = route
        self.websocket = True  # never pool this pod connection
        self.close_after = True  # nothing after a refused upgrade is read as a request
        self.retried = True
        self.pod = pod
        pod.owner = self
        pod.await_response()
        self.pod_data(answer)
        if pod.closed and self.pod is pod:
            self.pod_lost()

    def websocket_switched(self, head: RequestHead, route: Route) -> asyncio.Transport:
        """The pod switched: this object lets go of the connection (edge.fastlane.pump takes it).

        The pump joins lane.connections in its place, so stopping the server closes it.
        """
        self.connecting = None
        lane = self.lane
        lane.forget(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.closed = True
        self.paused = 0
        lane.stats.request_done(
            head.method, 101, route_kind(route), time.monotonic() - self.started
        )
        transport = self.transport
        assert transport is not None
        self.transport = None
        return transport

    def _connect(self, address: Address) -> None:
        """Open a pod connection, or queue for one when too many are being opened."""
        if self.lane.pool.reserve(address, self):
            self.pod_slot(address)
        else:
            self.queued_for = address

    def wants_pod(self, address: Address) -> bool:
        wanted = self.queued_for == address and self.request is not None and not self.closed
        self.queued_for = None
        return wanted

    def pod_ready(self, connection: PodConnection) -> None:
        """A released pod connection, handed straight to this queued request."""
        self._attach(connection, reused=True)

    def pod_slot(self, address: Address) -> None:
        """This request may open its pod connection now (the pool reserved it)."""
        self.reserved_for = address
        self.connecting = self.lane.loop.create_task(self._open(address))

    def _release_slot(self) -> None:
        """Give the pool's opening slot back, exactly once (task done, failed or cancelled)."""
        address, self.reserved_for = self.reserved_for, None
        if address is not None:
            self.lane.pool.unreserve(address)

    async def _open(self, address: Address) -> None:
        try:
            pod = await self.lane.pool.connect(address)
        except UpstreamError as e:
            self._release_slot()
            self.connecting = None
            if self.request is not None and not self.closed:
                self._fail(e)
            return
        except BaseException:
            self._release_slot()
            raise
        self._release_slot()
        self.connecting = None
        if self.request is None or self.closed:
            pod.close()  # the browser left while we connected
            return
        self._attach(pod, reused=False)

    def _attach(self, pod: PodConnection, *, reused: bool) -> None:
        self.pod = pod
        self.pod_reused = reused
        pod.owner = self
        if self.write_full:
            pod.pause_reading(True)
        buffer = self.buffer
        sendable = min(self.body_left, len(buffer))
        if sendable and sendable < 16384:
            # A small body that came with the head goes in the same write.
            body = buffer if sendable == len(buffer) else buffer[:sendable]
            self.buffer = buffer[sendable:]
            pod.write(self.pod_head + body)
            self._sent_body(sendable)
        else:
            pod.write(self.pod_head)
            if sendable:
                self._pump_body()
        if not self.body_left and self.pod is pod:
            pod.await_response()

    # -- request body to the pod -----------------------------------------------

    def _send_body(self, data: bytes) -> None:
        pod = self.pod
        assert pod is not None
        pod.write(data)
        self._sent_body(len(data))
        if not self.body_left and self.pod is pod:
            pod.await_response()

    def _sent_body(self, count: int) -> None:
        self.body_left -= count
        self.lane.stats.bytes_to_upstream += count

    def _pump_body(self) -> None:
        buffer = self.buffer
        sendable = min(self.body_left, len(buffer))
        if not sendable:
            return
        self.buffer = buffer[sendable:]
        self._send_body(buffer if sendable == len(buffer) else buffer[:sendable])
        if len(self.buffer) <= BUFFER_LIMIT:
            self._unpause(_PAUSED_BUFFER)

    def pod_write_paused(self, paused: bool) -> None:
        if paused:
            self._pause(_PAUSED_POD_FULL)
        else:
            self._unpause(_PAUSED_POD_FULL)

    # -- the pod's response ------------------------------------------------------

    def pod_data(self, data: bytes) -> None:
        if self.head_sent:
            self._relay(data)
            return
        request = self.request
        assert request is not None
        if self.body_left:
            # An answer before the whole body: the rest cannot be told from a next request.
            self.close_after = True
        buffer = self.resp_buf + data if self.resp_buf else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_RESPONSE_HEAD:
                    self._fail(UpstreamProtocolError("response head too large"))
                else:
                    self.resp_buf = buffer
                return
            try:
                head = parse_response(
                    buffer,
                    end,
                    request.method == "HEAD",
                    self.lane.settings.reserved_cookies,
                    self.close_after,
                )
            except Garbage as e:
                self._fail(UpstreamProtocolError(f"invalid response from the server: {e}"))
                return
            if head.status >= 200:
                break
            self._write(head.client_head)  # 1xx: relayed, then the real head follows
            buffer = buffer[end + 4 :]
            if not buffer:
                self.resp_buf = b""
                return
        self.resp_buf = b""
        self.head_sent = True
        self.status = head.status
        id_line = self._id_line()
        self.framing = framing = head.framing
        self.pod_keep = head.keep_alive and not self.websocket
        body_at = end + 4
        rest = len(buffer) - body_at
        if framing is Framing.NONE:
            if rest:
                self.pod_keep = False  # bytes after a bodiless response: never reuse it
            self._write(head.client_head[:-2] + id_line + b"\r\n")
            self._response_done()
            return
        if framing is Framing.LENGTH:
            self.resp_left = head.length
            if rest <= head.length:
                # The common case: one write, the pod's own bytes when nothing changed.
                if not self.closed:
                    self.transport.write(  # type: ignore[union-attr]
                        buffer[: end + 2] + id_line + buffer[end + 2 :]
                        if head.verbatim
                        else head.client_head[:-2] + id_line + b"\r\n" + buffer[body_at:]
                    )
                self.counted = rest
                self.lane.stats.bytes_to_client += rest
                self.resp_left = left = head.length - rest
                if not left:
                    self._response_done()
                return
        elif framing is Framing.CHUNKED:
            self.chunks = ChunkedFraming()
        self._write(head.client_head[:-2] + id_line + b"\r\n")
        if rest:
            self._relay(buffer[body_at:])

    def _relay(self, data: bytes) -> None:
        framing = self.framing
        if framing is Framing.LENGTH:
            left = self.resp_left
            size = len(data)
            if size < left:
                self.resp_left = left - size
                self._write(data)
                self._count(size)
                return
            if size > left:
                self.pod_keep = False  # more than the pod announced: never reuse it
                data = data[:left]
            self.resp_left = 0
            self._write(data)
            self._count(left)
            self._response_done()
        elif framing is Framing.CHUNKED:
            chunks = self.chunks
            assert chunks is not None
            try:
                end = chunks.feed(data)
            except Garbage as e:
                self._broken("protocol", f"bad chunk framing: {e}")
                return
            if end >= 0 and end < len(data):
                self.pod_keep = False
                data = data[:end]
            self._write(data)
            self._count(chunks.payload - self.counted)
            if end >= 0:
                self._response_done()
        else:
            self._write(data)
            self._count(len(data))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _count(self, size: int) -> None:
        self.counted += size
        self.lane.stats.bytes_to_client += size

    def pod_lost(self) -> None:
        """The pod closed its connection (the owner was this connection)."""
        self.pod = None
        if self.request is None:
            return
        if not self.head_sent:
            if (
                self.pod_reused
                and not self.retried
                and not self.resp_buf
                and self.request.content_length == 0
                and self.request.method in IDEMPOTENT
            ):
                # A pooled connection the pod had closed while idle: once more, fresh.
                self.retried = True
                route = self.route
                assert route is not None
                self._connect((route.target.host, route.target.port))
                return
            self._fail(UpstreamUnavailable("the server closed the connection", kind="reset"))
        elif self.framing is Framing.UNTIL_CLOSE:
            self._finish()
        else:
            self._broken("reset", "the server closed the connection mid-response")

    def pod_timed_out(self) -> None:
        if self.pod is not None:
            self.pod.abort()
            self.pod = None
        if not self.head_sent:
            self._fail(UpstreamTimeout("the server did not answer in time"))
        else:
            self._broken("timeout", "the server stopped sending mid-response")

    # -- ending a request ----------------------------------------------------------

    def _response_done(self) -> None:
        pod, self.pod = self.pod, None
        if pod is not None:
            if self.pod_keep and not self.body_left:
                self.lane.pool.release(pod)
            else:
                pod.close()
        if self.body_left:
            self.close_after = True  # the rest of the body cannot be told from the next request
        self._finish()

    def _fail(self, error: UpstreamError) -> None:
        """The pod failed before any response byte went out: an error page instead."""
        request = self.request
        assert request is not None
        lane = self.lane
        lane.stats.upstream_error(error.kind)
        log.info(
            "upstream %s for %s %s: %s",
            error.kind,
            request.method,
            request.raw_path,
            error,
            extra={"request_id": self.request_id, "status": error.status},
        )
        if self.pod is not None:
            self.pod.close()
            self.pod = None
        close = self.close_after or self.body_left > 0
        self.close_after = close
        self.status = error.status
        self.framing = Framing.NONE
        self._write(self._with_id(lane.page(error, close)))
        self._finish()

    def _broken(self, kind: str, why: str) -> None:
        """The pod failed after the head went out: cut the browser off so it sees it."""
        request = self.request
        assert request is not None
        self.lane.stats.upstream_error(kind)
        log.info(
            "upstream %s mid-response on %s: %s",
            kind,
            request.raw_path,
            why,
            extra={"request_id": self.request_id},
        )
        if self.pod is not None:
            self.pod.abort()
            self.pod = None
        if self.transport is not None:
            self.transport.abort()
        self.closed = True
        self._finish()

    def _with_id(self, page: bytes) -> bytes:
        """An error page with this request's id among its headers."""
        end = page.find(b"\r\n\r\n") + 2
        return page[:end] + self._id_line() + page[end:]

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
        self._unpause(_PAUSED_POD_FULL)
        if len(self.buffer) <= BUFFER_LIMIT:
            self._unpause(_PAUSED_BUFFER)
        if self.buffer:
            self._next_request()
