"""The ops application: what operators and the platform talk to, on the ops port.

- ``/metrics``: Prometheus text format from PodgateMetrics.
- ``/healthz``: 200 whenever the process can answer at all (liveness).
- ``/readyz``: 200 only while ``is_ready()`` says podgate can serve
  (routes synced), else 503 (readiness: take the pod out of the Service).
- ``/api/routes``: the configurable-http-proxy route API (edge.chp_api);
  ``reserved_prefix`` is the path space no API route may reach into (the
  user servers', when the control plane routes them from the pod watch).

The wiring may add more routes (``/hub/api``) through ``extra_routes``,
a function it passes in (the edge never imports the control plane).
Nothing here is on the public port, and none of the handlers defined here
reads a session cookie.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from edge.chp_api import ChpRouteApi
from metrics import PodgateMetrics
from routes import RouteTable

# A POST to /api/routes is a small JSON object; refuse anything larger early.
MAX_API_BODY = 64 * 1024


def build_ops_app(
    *,
    table: RouteTable,
    metrics: PodgateMetrics,
    api_token: str | None,
    is_ready: Callable[[], bool],
    reserved_prefix: str | None = None,
    extra_routes: Callable[[web.Application], None] | None = None,
) -> web.Application:
    app = web.Application(client_max_size=MAX_API_BODY)

    async def scrape(request: web.Request) -> web.Response:
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": metrics.content_type}
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        if is_ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    app.router.add_get("/metrics", scrape)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    ChpRouteApi(table, api_token, reserved_prefix=reserved_prefix).add_to(app)
    if extra_routes is not None:
        extra_routes(app)  # the wiring's: /hub/api of the control plane
    return app
