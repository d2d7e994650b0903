"""Reading a request head on a fast-lane connection, and starting its request.

A head that edge.fastlane.head parses and whose route Edge.forwardable
returns is started: its request id, the rewritten head for the pod, then a
pooled pod connection (edge.fastlane.request_body). A head that does not come
in one read is timed and counted per peer (edge.fastlane.slow_heads: 408
when too slow, 429 past the cap). Anything else is handed over to aiohttp
(edge.fastlane.handover); a WebSocket handshake goes to edge.fastlane.websocket.
Requests for the hub are relayed the same way, with the hub's own head
(edge.fastlane.hub_head).
"""

from __future__ import annotations

import logging
import time

from edge.app import route_kind
from edge.fastlane.head import (
    MAX_HEAD,
    RequestHead,
    forwarded_lines,
    origin_claims,
    parse_request,
    upstream_head,
)
from edge.fastlane.hub_head import hub_head
from edge.fastlane.slow_heads import TOO_MANY, TOO_SLOW
from edge.fastlane.state import ConnectionState
from edge.fastlane.websocket import is_handshake
from edge.origin import SAFE_METHODS
from edge.request_id import well_formed
from edge.upstream.response import Framing
from routes import Route

# One logger for the connection, whichever file a step of it lives in.
log = logging.getLogger("edge.fastlane.protocol")


class HeadReading(ConnectionState):
    """Reading request heads: serve, refuse, or hand over."""

    __slots__ = ()

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
        if route is lane.hub_route:
            self._to_hub(buffer, head, route)
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

    def _to_hub(self, buffer: bytes, head: RequestHead, route: Route) -> None:
        """Relayed to the hub like a pod, with the hub's head; upgrades go to aiohttp's lane."""
        if head.upgrade:
            self._hand_over()
            return
        request_id = self._request_id(head)
        pod_head = hub_head(buffer, head, request_id, self.peer_xff, self.lane.scheme)
        if pod_head is None:
            self._hand_over()
            return
        self._start(head, route, request_id, pod_head)

    def _start(
        self,
        head: RequestHead,
        route: Route,
        request_id: str | None = None,
        pod_head: bytes | None = None,
    ) -> None:
        lane = self.lane
        self.request = head
        self.request_id = request_id or self._request_id(head)
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
        self.pod_head = pod_head or self._pod_head(head, route)
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
