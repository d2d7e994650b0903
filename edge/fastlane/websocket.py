"""WebSocket upgrades served by the fast lane: the handshake with the pod, then the pump.

For a head edge.fastlane.head marked `upgrade` whose route Edge.forwardable
returned, `is_handshake` applies edge.websocket.handshake's rules; a valid handshake
gets a dedicated pod connection (never pooled), the rewritten head
(edge.fastlane.head's rules plus the upgrade headers and the browser's
Sec-WebSocket-* lines, as edge.websocket.handshake builds them), and the pod's answer
is read with edge.websocket.handshake's bounded parser. A 101 goes back to the
browser (session Set-Cookie dropped by edge.headers) and both transports are
joined by edge.fastlane.pump. Any other answer on the browser's
connection is relayed by the fast lane's plain response relay (status, headers
through edge.upstream.response, body as framed) and the connection then closes,
so nothing after a refused upgrade is ever read as part of it.

The handshake runs in one Task; after the 101 nothing of it is kept alive.
It never decodes a frame and never decides routing or authorization.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

from multidict import CIMultiDict, CIMultiDictProxy

from edge.app import route_kind
from edge.errors import UpstreamError
from edge.fastlane.head import RequestHead
from edge.fastlane.pump import Pump
from edge.fastlane.state import ConnectionState
from edge.headers import client_response_headers
from edge.upstream.pool import PodConnection
from edge.websocket.farewell import SESSION_ENDED
from edge.websocket.handshake import (
    PASSTHROUGH_REQUEST_HEADERS,
    HandshakeRejected,
    PodResponseHead,
    check_client_handshake,
)
from edge.websocket.pod_upgrade import connect_pod, read_upgrade_answer
from edge.websocket.relay import PodLink
from edge.websocket.settings import WebSocketSettings
from routes import Route

# One logger for the connection, whichever file a step of it lives in.
log = logging.getLogger("edge.fastlane.protocol")

_PASSTHROUGH = frozenset(name.lower().encode() for name in PASSTHROUGH_REQUEST_HEADERS)
_UPGRADE_LINES = b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
_DEFAULT_SETTINGS = WebSocketSettings()


def settings_of(found: object) -> WebSocketSettings:
    return found if isinstance(found, WebSocketSettings) else _DEFAULT_SETTINGS


def is_handshake(raw: bytes, head: RequestHead, route: Route) -> bool:
    """True when the fast lane can serve this upgrade (else aiohttp answers it, 400 included)."""
    if head.method != "GET" or head.has_length or route.target.scheme != "http":
        return False
    headers: CIMultiDict[str] = CIMultiDict()
    for line in raw[: head.end - 4].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers.add(name.decode("latin-1"), value.strip(b" \t").decode("latin-1"))
    try:
        check_client_handshake(head.method, (1, 1), CIMultiDictProxy(headers))
    except HandshakeRejected:
        return False
    return True


def upgrade_request(pod_head: bytes) -> bytes:
    """The pod's upgrade request from edge.fastlane.head.upstream_head's output.

    Sec-WebSocket-* lines other than the ones edge.websocket.handshake passes through
    are dropped, and the upgrade headers (hop-by-hop, so removed) are added back.
    """
    lines = pod_head[:-4].split(b"\r\n")
    kept = [
        line
        for line in lines
        if line[:14].lower() != b"sec-websocket-" or line.partition(b":")[0].lower() in _PASSTHROUGH
    ]
    return b"\r\n".join(kept) + b"\r\n" + _UPGRADE_LINES + b"\r\n"


def switch_head(
    head: PodResponseHead, reserved_cookies: frozenset[str], request_id: str = ""
) -> bytes:
    """The 101 head for the browser: the pod's headers as edge.headers lets them through."""
    headers = client_response_headers(head.headers.items(), reserved_cookies)
    if request_id:
        headers["X-Request-Id"] = request_id
    lines = [f"HTTP/1.1 101 {head.reason or 'Switching Protocols'}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    lines.append("Connection: Upgrade")
    lines.append("Upgrade: websocket")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


class WebSocketUpgrades(ConnectionState):
    """A handshake the fast lane serves, from its start to the pump or an answer."""

    __slots__ = ()

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


async def open_websocket(
    browser: WebSocketUpgrades, head: RequestHead, route: Route, request: bytes
) -> None:
    """Handshake with the pod for `browser`, then switch or hand over or answer an error page."""
    lane = browser.lane
    ws = settings_of(lane.settings.websocket)
    pod: PodLink | None = None
    try:
        pod = await connect_pod(route.target, lane.settings.upstream.connect_timeout)
        assert pod.transport is not None
        pod.transport.write(request)
        answer, answer_bytes = await read_upgrade_answer(pod, ws.handshake_timeout)
    except UpstreamError as e:
        if pod is not None:
            pod.close()
        browser.websocket_failed(head, route, e)
        return
    except BaseException:
        if pod is not None:
            pod.close()
        raise
    if browser.closed or browser.transport is None:
        pod.close()
        return
    if answer.status != 101:
        # Relayed by the fast lane's own response relay, as if it answered a plain GET.
        browser.websocket_refused(head, route, pod.transport, answer_bytes + pod.take_buffered())
        return
    pod_transport = pod.transport
    browser_transport = browser.websocket_switched(head, route)
    browser_transport.write(switch_head(answer, lane.settings.reserved_cookies, browser.request_id))
    if pod_transport is None:
        # The pod said its piece and left before the switch: pass it on, then close.
        browser_transport.write(pod.take_buffered())
        browser_transport.close()
        return
    early = browser.buffer[head.end :]
    browser.buffer = b""
    pump = Pump(lane, route)
    # Registered before join, which may finish the pump at once (and unregister it).
    lane.edge.open_websockets.opened(
        pump, lambda: pump.close_when_idle(SESSION_ENDED), head.host, head.raw_path, head.cookies
    )
    pump.join(
        browser_transport,
        cast(asyncio.Transport, pod_transport),
        ws.write_buffer_high,
        early,
        pod.take_buffered(),
    )
