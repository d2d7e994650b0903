"""Serving the public port: the fast lane in front, aiohttp's server behind it.

`serve_public` starts the public Application the way the wiring always has
(an AppRunner with handler_cancellation), but listens itself
(edge.fastlane.listener: a burst of connections is accepted at once) with the
fast lane's protocol (edge.fastlane.protocol): plain proxied requests are relayed there,
and every other connection is handed over to the runner's aiohttp server,
which then serves it with the full edge logic. Both serve the same socket.

Stopping is a drain (podgate.lifecycle calls it on SIGTERM): the listening
socket closes first, so new connections are refused; idle connections close;
requests in flight on either lane are answered; WebSockets on either lane get
1001 Going Away (edge.websocket.farewell). Whatever is still open when the grace
period ends is cut off.

This module only starts and stops servers; it never parses HTTP and never
decides routing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from edge.app import edge_of
from edge.fastlane.lane import KEEPALIVE_TIMEOUT
from edge.fastlane.listener import Listener
from edge.fastlane.protocol import FastLane

# Seconds close() lets requests in flight finish before cutting them off (default).
CLOSE_GRACE = 5.0


@dataclass
class PublicServer:
    """A running public port: its address, and close()."""

    url: str
    port: int
    runner: web.AppRunner
    listener: Listener
    lane: FastLane
    grace: float = CLOSE_GRACE
    closed: bool = False

    async def close(self) -> None:
        """Stop listening, then drain both lanes at once within the grace period."""
        if self.closed:
            return
        self.closed = True
        self.listener.close()
        await self.listener.wait_started()
        # aiohttp's shutdown (runner.cleanup) waits `grace` for its handlers; its
        # on_shutdown signal tells relayed WebSockets 1001 (edge.app.Edge.go_away).
        await asyncio.gather(self._drain_fast_lane(), self.runner.cleanup())
        await self.lane.pool.close()

    async def _drain_fast_lane(self) -> None:
        lane = self.lane
        connections = lane.connections
        lane.drained = drained = asyncio.Event()
        for connection in list(connections):
            connection.close_when_idle()  # busy ones after their answer; pumps say 1001
        if connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drained.wait(), self.grace)
        for connection in list(connections):
            connection.abort()


async def serve_public(
    app: web.Application,
    host: str,
    port: int,
    *,
    backlog: int = 2048,
    reuse_address: bool = True,
    grace: float = CLOSE_GRACE,
    tls: Callable[[], ssl.SSLContext] | None = None,
    tls_per_address: int = 256,
) -> PublicServer:
    """Serve an app built by edge.app.build_public_app on host:port (0: any free port).

    `grace`: seconds close() gives requests in flight and WebSockets to finish.
    `tls`: serve HTTPS, each new connection with the context it returns then
    (edge.tls.ServerCertificate.context follows reloads); plain HTTP gets a 400.
    `tls_per_address`: connections one client address (not a trusted proxy) may
    have silent or in their handshake at once; more are closed (edge.tls.sniff).
    """
    # handler_cancellation: a browser hanging up cancels its upstream request at once.
    # keepalive_timeout as the fast lane's: aiohttp's own (an hour) would also let a
    # handed-over connection trickle its next request head for that long.
    runner = web.AppRunner(
        app,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=grace,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
    )
    await runner.setup()
    try:
        server_factory = runner.server
        assert server_factory is not None
        loop = asyncio.get_running_loop()
        lane = FastLane(edge_of(app), server_factory, loop, scheme="https" if tls else "http")
        listener = Listener.bind(
            host, port, lane, loop, backlog=backlog, reuse_address=reuse_address
        )
        if tls is not None:
            listener.use_tls(tls, tls_per_address, edge_of(app).settings.is_trusted_proxy)
    except BaseException:
        await runner.cleanup()
        raise
    listener.start()
    bound_host, bound_port = listener.sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return PublicServer(
        url=f"{'https' if tls else 'http'}://{shown}:{bound_port}",
        port=bound_port,
        runner=runner,
        listener=listener,
        lane=lane,
        grace=grace,
    )
