"""The aiohttp lane's WebSocket relay: handshake with the pod, then a raw byte relay.

relay_websocket is called by the edge's handler for a request that asks
for a WebSocket upgrade, after the route has been found and the user
authorised. It opens its own connection to the route's target (not the
HTTP pool: an upgraded connection never returns to a pool), sends the
upgrade request with the browser's Sec-WebSocket-Key/Version/Protocol/
Extensions, and then:

- the pod answers 101: the 101 and the pod's headers go back to the
  browser (so the subprotocol, permessage-deflate and the accept key are
  negotiated by browser and pod end to end), then bytes are relayed both
  ways by edge.websocket.relay with no frame decoding; a close or a drop on
  either side closes the other, close codes and reasons pass as bytes;
- the pod answers anything else: that status, headers and body go back;
- the browser's handshake is invalid: 400, before any pod is contacted;
- the pod cannot be reached or is too slow to answer: 503 / 504.

Why raw bytes: aiohttp's frame relay (WebSocketResponse + ws_connect)
decodes, unmasks, inflates and re-encodes every message twice, holds a
reader task per side and buffers per socket. Measured side by side with
bench/ws_relay_compare.py (separate loopback processes for load, proxy and
pod on a shared 2-core machine; aiohttp 3.14, uvloop; medians of 3 runs of
3 s; the aiohttp load client itself caps round-trips near the "direct"
figure):

    figure                                 direct   raw relay   frame relay
    round-trips/s, 100-byte messages       39,991      12,157        10,094
    bulk one-way MB/s, 64 KiB messages      2,987       1,882         1,266
    proxy KiB per idle socket (5,000 open)      -        13.5          26.0

Round-trips are the noisiest figure here (an earlier run gave 16,217 raw
against 11,158 frame); the raw relay led in every run. Behind the public
app (edge.app, proxy-only) the same relay measured 11,579 round-trips/s,
1,763 MB/s and 15.5 KiB per idle socket: the app's frames and its upstream
header dict stay alive with the socket. 9,900 idle sockets were held at
13.9 KiB each; exactly 10,000 needs more than the 20,000 file descriptors
this machine allows one process (two per socket). After closing them all,
no proxy file descriptor was left open. An idle socket costs aiohttp's
per-connection objects, two transports, a PodLink, a ByteRelay and one
suspended coroutine: no Task of its own.

This module must never decode or buffer WebSocket messages, never call
the Kubernetes API, and never replace aiohttp internals: it takes the
browser's connection over through aiohttp's public upgrade seam (see
edge.websocket.relay).
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web
from multidict import CIMultiDict

from edge.errors import (
    PLAIN_PAGES,
    ErrorPages,
    UpstreamError,
)
from edge.headers import client_response_headers
from edge.settings import EdgeSettings
from edge.websocket.handshake import (
    HandshakeRejected,
    PodResponseHead,
    build_upgrade_request,
    check_client_handshake,
)
from edge.websocket.pod_upgrade import connect_pod, read_upgrade_answer
from edge.websocket.refusal import relay_refusal
from edge.websocket.relay import ByteRelay, PodLink
from edge.websocket.settings import WebSocketSettings
from metrics import EdgeStats
from routes import Route, Target

DEFAULT_SETTINGS = WebSocketSettings()


def _websocket_settings(settings: EdgeSettings) -> WebSocketSettings:
    found = settings.websocket
    return found if isinstance(found, WebSocketSettings) else DEFAULT_SETTINGS


class RelaySet(Protocol):
    """Where a running relay is kept: a set, or edge.websocket.sessions.TrackedRelays."""

    def add(self, relay: ByteRelay) -> None: ...

    def discard(self, relay: ByteRelay) -> None: ...


async def relay_websocket(
    request: web.BaseRequest,
    route: Route,
    upstream_path: str,
    headers: CIMultiDict[str],
    stats: EdgeStats,
    settings: EdgeSettings,
    relays: RelaySet | None = None,
    *,
    pages: ErrorPages = PLAIN_PAGES,
) -> web.StreamResponse:
    """Relay one WebSocket between the browser and the route's pod; returns when both are closed.

    While it relays, the ByteRelay sits in `relays` (so a stopping server can say 1001 to it).
    """
    ws = _websocket_settings(settings)
    try:
        check_client_handshake(request.method, tuple(request.version), request.headers)
    except HandshakeRejected as e:
        return web.Response(
            status=400,
            text=f"Bad WebSocket handshake: {e.reason}\n",
            headers={"Sec-WebSocket-Version": "13"},
        )

    try:
        pod = await connect_pod(route.target, settings.upstream.connect_timeout)
        handshake = await _handshake(request, pod, route.target, upstream_path, headers, ws)
    except UpstreamError as e:
        stats.upstream_error(e.kind)
        return pages.upstream(e)
    if handshake.status != 101:
        return await relay_refusal(
            request, pod, handshake, ws.handshake_timeout, settings.reserved_cookies
        )
    response = await _send_switch(request, pod, handshake, settings.reserved_cookies)
    # Nothing of the handshake is needed while relaying: let it go, since an
    # idle socket's cost is whatever stays referenced from here on.
    del handshake, headers, upstream_path
    relay = _join(request, pod, route, stats, ws)
    if relay is not None:
        if relays is not None:
            relays.add(relay)
        try:
            await relay.run(request.writer)
        finally:
            if relays is not None:
                relays.discard(relay)
    return response


async def _handshake(
    request: web.BaseRequest,
    pod: PodLink,
    target: Target,
    upstream_path: str,
    headers: CIMultiDict[str],
    ws: WebSocketSettings,
) -> PodResponseHead:
    """Send the upgrade request and read the pod's answer head; the pod is closed on failure."""
    try:
        assert pod.transport is not None
        host = f"[{target.host}]" if ":" in target.host else target.host
        default_host = f"{host}:{target.port}"
        pod.transport.write(
            build_upgrade_request(upstream_path, headers, request.headers, default_host)
        )
        head, _ = await read_upgrade_answer(pod, ws.handshake_timeout)
        return head
    except BaseException:
        pod.close()
        raise


async def _send_switch(
    request: web.BaseRequest, pod: PodLink, head: PodResponseHead, reserved_cookies: frozenset[str]
) -> web.StreamResponse:
    """Send the pod's 101 and headers to the browser; the pod is closed on failure."""
    response = web.StreamResponse(
        status=101,
        reason=head.reason or "Switching Protocols",
        headers=client_response_headers(head.headers.items(), reserved_cookies),
    )
    response.headers["Connection"] = "Upgrade"
    response.headers["Upgrade"] = "websocket"
    try:
        await response.prepare(request)
    except BaseException:
        pod.close()
        raise
    return response


def _join(
    request: web.BaseRequest, pod: PodLink, route: Route, stats: EdgeStats, ws: WebSocketSettings
) -> ByteRelay | None:
    """Join the browser's connection and the pod's into a ByteRelay; None if either is gone."""
    client_transport = request.transport
    pod_transport = pod.transport
    if client_transport is None or pod_transport is None:
        pod.close()
        return None
    client_transport.set_write_buffer_limits(high=ws.write_buffer_high)
    relay = ByteRelay(
        request.protocol, client_transport, pod, pod_transport, stats, ws.write_buffer_high, route
    )
    # aiohttp's upgrade seam (what WebSocketResponse uses): bytes the browser
    # sends from now on, and any it sent early, go to relay.feed_data.
    request.protocol.set_parser(relay)  # type: ignore[arg-type]
    pod.attach(relay)
    return relay
