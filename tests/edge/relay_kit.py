"""A bare WebSocket relay server for the edge's relay tests (not a fixture: tests call it)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from edge.settings import EdgeSettings
from edge.websocket.aiohttp_lane import relay_websocket
from metrics.edge_stats import EdgeStats
from routes import Route


async def start_relay_edge(route: Route, stats: EdgeStats, settings: EdgeSettings) -> TestServer:
    """A bare aiohttp app that hands every request to relay_websocket for `route`."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await relay_websocket(
            request, route, request.path_qs, CIMultiDict(), stats, settings
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    edge = TestServer(app, host="127.0.0.1", port=0)
    await edge.start_server()
    return edge
