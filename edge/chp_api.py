"""The configurable-http-proxy (CHP) route API over our RouteTable, on the ops port.

A stock JupyterHub (ConfigurableHTTPProxy with should_start=False) drives
podgate through it, so status codes, bodies and their order of checks
follow CHP's lib/configproxy.js:

- ``GET /api/routes[?inactive_since=<ISO 8601>]`` -> 200 ``{path: route}``;
  a bad date -> 400. ``GET /api/routes/<path>`` -> 200 route, or 404.
- ``POST /api/routes/<path>`` with ``{"target": "...", ...data}`` -> 201;
  the body is parsed before the token is checked (as CHP does), so bad
  JSON -> 400 even without a token; a missing target -> 400.
- ``DELETE /api/routes/<path>`` -> 204, or 404 when absent.
- Any other method -> 405. A wrong or missing ``Authorization: token <t>``
  -> 403 with an empty body.
- A route is ``{...posted data, "target": url, "last_activity": ISO-8601 ms Z}``.

Where podgate differs, on purpose:

- With no token configured the API is closed: every call answers 403 with
  a message saying how to set one (CHP leaves it open; on a cluster that let
  any user's pod rewrite other users' routes).
- With the control plane on, the ``/user/`` space belongs to the pod watch:
  a route at or under ``/user/<name>/``, or above it (``/user``, ``/``,
  which would receive every user's traffic while their server is down), is
  refused with 403.

- Routes podgate derives itself (RouteSource.PODS, CONFIG) are listed, with
  ``"podgate_source"`` naming their origin and without their pod token,
  but POST or DELETE on them answers 409 Conflict: they follow the cluster
  or the config file, and an API change would be silently undone.
- A target that is not an absolute http(s)/ws(s) URL is refused with 400
  (CHP stores any string and fails later, on every proxied request).
- A path with an invalid percent escape is treated literally (CHP's
  handler throws and never answers).

This module never proxies traffic and never reads a session cookie.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from routes import Route, RouteSource, RouteTable
from routes.path import route_key

log = logging.getLogger(__name__)

PREFIX = "/api/routes"

NO_TOKEN_MESSAGE = (
    "The route API is disabled: no token is configured. Set proxy_auth_token in the config "
    "or CONFIGPROXY_AUTH_TOKEN in the environment, and send it as 'Authorization: token ...'."
)

# CHP takes the first "token <value>" anywhere in the header.
_TOKEN = re.compile(r"token\s+(\S+)")

# Keys podgate keeps on a route that must never leave the process.
_PRIVATE_DATA = frozenset({"token"})


def format_last_activity(seconds: float) -> str:
    """Epoch seconds as JavaScript's Date.toJSON() writes them: 2024-05-01T12:00:00.123Z."""
    millis = int(seconds * 1000)
    moment = datetime.fromtimestamp(millis // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}Z"


def parse_inactive_since(text: str) -> float:
    """An ISO 8601 date or date-time as epoch seconds; naive times are taken as UTC."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def route_body(route: Route) -> dict[str, Any]:
    """The JSON CHP would return for this route."""
    body: dict[str, Any] = {}
    if route.source is not RouteSource.API:
        if route.user is not None:
            body["user"] = route.user
        body["podgate_source"] = route.source.value
    for key, value in route.data.items():
        if route.source is RouteSource.API or key not in _PRIVATE_DATA:
            body[key] = value
    body["target"] = route.target.url
    body["last_activity"] = format_last_activity(route.last_activity)
    return body


def _json(body: Any) -> web.Response:
    # Route data set by other parts of podgate may hold non-JSON values: show them as text.
    return web.json_response(body, dumps=lambda v: json.dumps(v, default=str))


def _text(status: int, message: str = "") -> web.Response:
    return web.Response(status=status, text=message) if message else web.Response(status=status)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # JSON.parse refuses NaN and Infinity too


class ChpRouteApi:
    """The /api/routes handlers over one RouteTable."""

    def __init__(
        self, table: RouteTable, api_token: str | None, *, reserved_prefix: str | None = None
    ) -> None:
        """`reserved_prefix` (e.g. "/user/"): a space no API route may reach into."""
        self._table = table
        self._token = api_token.encode() if api_token else None
        self._reserved = route_key(reserved_prefix) if reserved_prefix else None
        if self._token is None:
            log.info("the CHP route API is disabled: no proxy_auth_token is configured")

    def add_to(self, app: web.Application) -> None:
        app.router.add_route("*", PREFIX, self.handle)
        app.router.add_route("*", PREFIX + "/{path:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # The route path is taken from the raw URL: the table decodes it exactly
        # once, as the edge does with request paths, so both agree on the key.
        raw = request.raw_path.split("?", 1)[0]
        if not raw.startswith(PREFIX) or raw[len(PREFIX) : len(PREFIX) + 1] not in ("", "/"):
            return _text(404, "Not Found")
        path = raw[len(PREFIX) :] or "/"
        if self._token is None:
            return _text(403, NO_TOKEN_MESSAGE)
        if request.method == "GET":
            if not self._authorized(request):
                return _text(403)
            return self._get(request, path)
        if request.method == "POST":
            return await self._post(request, path)
        if request.method == "DELETE":
            if not self._authorized(request):
                return _text(403)
            return self._delete(path)
        return _text(405, "Method not supported")

    def _authorized(self, request: web.Request) -> bool:
        if self._token is None:
            return False
        found = _TOKEN.search(request.headers.get("Authorization", ""))
        return found is not None and hmac.compare_digest(found.group(1).encode(), self._token)

    def _get(self, request: web.Request, path: str) -> web.Response:
        if path != "/":
            route = self._table.get(path)
            if route is None:
                return _text(404)
            return _json(route_body(route))
        since = request.query.get("inactiveSince") or request.query.get("inactive_since")
        if since:
            try:
                cutoff = parse_inactive_since(since)
            except ValueError:
                return _text(400, f"Invalid datestamp '{since}' must be ISO8601.")
            chosen = self._table.inactive_since(cutoff)
        else:
            chosen = list(self._table)
        return _json({r.path: route_body(r) for r in chosen})

    async def _post(self, request: web.Request, path: str) -> web.Response:
        body = await request.read()
        try:
            data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, RecursionError) as e:
            return _text(400, f"Body not valid JSON: {e}")
        data = data or {}  # CHP: JSON.parse(buf) || {}
        if not self._authorized(request):
            return _text(403)
        if not isinstance(data, dict) or not isinstance(data.get("target"), str):
            return _text(400, "Must specify 'target' as string")
        if self._reaches_reserved(path):
            return _text(
                403,
                f"Route {route_key(path)} would reach into {self._reserved}/, which belongs to "
                "podgate's user servers (from the pod watch); choose a path outside it.",
            )
        existing = self._table.get(path)
        if existing is not None and existing.source is not RouteSource.API:
            return self._conflict(existing)
        extra = {k: v for k, v in data.items() if k not in ("target", "last_activity")}
        user = extra.get("user")
        try:
            route = self._table.add(
                path,
                data["target"],
                source=RouteSource.API,
                user=user if isinstance(user, str) else None,
                data=extra,
            )
        except ValueError as e:
            return _text(400, f"Invalid target: {e}")
        if self._table.host_routing and route.path != "/":
            route.data["host"] = route.path.split("/")[1]  # as CHP records it
        log.info("route added %s -> %s", route.path, route.target.url)
        return _text(201)

    def _delete(self, path: str) -> web.Response:
        existing = self._table.get(path)
        if existing is None:
            return _text(404)
        if existing.source is not RouteSource.API:
            return self._conflict(existing)
        self._table.remove(path)
        log.info("route removed %s", existing.path)
        return _text(204)

    def _reaches_reserved(self, path: str) -> bool:
        """True when a route at `path` would take traffic meant for the reserved space.

        Compared as the table keys them (decoded once, dot segments resolved), so
        no spelling of the path slips past: at or under the prefix, or above it.
        """
        if self._reserved is None:
            return False
        key = route_key(path)
        return (
            key == self._reserved
            or key.startswith(self._reserved + "/")
            or self._reserved.startswith(key.rstrip("/") + "/")
        )

    @staticmethod
    def _conflict(route: Route) -> web.Response:
        return _text(
            409,
            f"Route {route.path} is managed by podgate ({route.source.value}); "
            "it cannot be changed through this API.",
        )
