"""The public edge: one function that builds the aiohttp app serving the public port.

Per request, once: normalise the path (routes.normalise_path), look the route
up, check the session cookie for routes that require one (its signature, then
whether it still counts: the SessionPolicy the wiring hands in, for sign-outs
and removed users), authorize, check the origin of changes and handshakes to
those routes (edge.origin), then proxy the HTTP request (edge.proxy) or relay
the WebSocket (edge.websocket.aiohttp_lane).
With the control plane enabled, /hub/ and anything unroutable are relayed to
the control plane's hub app, which runs on its own event loop
(edge.hub_upstream); in proxy-only mode everything is routed by the table and
no route is a 404, as configurable-http-proxy does.

Why an aiohttp Application with the edge as its outermost middleware rather
than the low-level web.Server: no private aiohttp calls, and the app's
startup/cleanup signals. What that costs was measured with cProfile under wrk
(64 connections, small responses, uvloop): a router miss made aiohttp build
an HTTPNotFound per proxied request, so a last catch-all route is added
(proxied paths then resolve cheaply); the remaining Application overhead
(router resolve, middleware wrapping) is about a tenth of the edge's
per-request time, well below the syscalls.

The routing and authorization decision for a request that may simply be
forwarded lives in one method, Edge.forwardable, which the fast lane
(edge.fastlane, served by edge.server.serve_public) calls too: a request it
does not get a route for is handed to this app, which answers it in full.

This module never reads a request body, never imports the control plane
(it is reached through `hub`), and never talks to Kubernetes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import quote

from aiohttp import HttpVersion10, HttpVersion11, web

from edge.errors import PLAIN_LOOK, ErrorPageLook, ErrorPages
from edge.headers import (
    cookies_within_limits,
    framing_named,
    session_cookie_values,
    session_values,
    upstream_request_headers,
)
from edge.hub_upstream import HUB_TARGET, HubUpstream, hub_request_headers
from edge.origin import (
    OriginClaims,
    first_value,
    from_permitted_origin,
    needs_origin_check,
)
from edge.proxy import proxy_http
from edge.request_id import HEADER as REQUEST_ID_HEADER
from edge.request_id import RequestIds, current_request_id
from edge.settings import EdgeSettings
from edge.upstream.pool import PodPool
from edge.websocket.aiohttp_lane import relay_websocket
from edge.websocket.handshake import wants_websocket
from edge.websocket.relay import ByteRelay
from edge.websocket.sessions import OpenWebSockets, TrackedRelays
from metrics.edge_stats import EdgeStats
from routes import Route, RouteSource, RouteTable, normalise_path

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Methods counted by name in metrics; anything else is "other" so a hostile
# client cannot grow the label set.
_KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
)
# HTTP/1.0 and 1.1; aiohttp's parser also lets through 0.9 and 2.0 request lines.
_SPOKEN_VERSIONS = frozenset((HttpVersion10, HttpVersion11))
_KIND_OF_SOURCE = {RouteSource.PODS: "user", RouteSource.API: "api", RouteSource.CONFIG: "config"}


class SessionLike(Protocol):
    user: str
    issued: float  # epoch seconds


class SessionVerifier(Protocol):
    """What the edge needs from edge.session.SessionCodec: verify or raise InvalidSession."""

    def verify(self, value: str) -> SessionLike: ...


class SessionPolicy(Protocol):
    """Whether a verified session still counts: its user still allowed by the running
    config, and not signed out (everywhere) since the session was issued.

    Asked on every request, after the (cached) signature check, so a cached
    cookie never outlives a revocation: it must be a few dict and set lookups.
    """

    def admits(self, user: str, issued: float) -> bool: ...


# The user a personal API token (`Authorization: token …`/`Bearer …`) may use servers as,
# or None: the control plane's tokens, asked only where no session cookie admits.
TokenUser = Callable[[str], str | None]

# Recorded for a request whose client went away before it was answered (nginx's 499).
CLIENT_CLOSED = 499


class _Outcome:
    """What one request turned out to be, for the metrics (filled in as routing decides)."""

    __slots__ = ("kind", "status")

    def __init__(self) -> None:
        self.kind = "none"
        self.status = 500


EDGE_KEY: web.AppKey[Edge] = web.AppKey("podgate_edge")
REQUEST_ID_KEY = web.RequestKey("podgate_request_id", str)


class Edge:
    """The routing decision for one request, and the dispatch to proxy, relay or hub."""

    def __init__(
        self,
        *,
        table: RouteTable,
        settings: EdgeSettings,
        stats: EdgeStats,
        sessions: SessionVerifier | None,
        pool: PodPool,
        hub: HubUpstream | None,
        policy: SessionPolicy | None = None,
        error_look: ErrorPageLook = PLAIN_LOOK,
        token_user: TokenUser | None = None,
    ) -> None:
        self.table = table
        self.settings = settings
        self.stats = stats
        self.sessions = sessions
        self.policy = policy
        self.token_user = token_user
        self.pool = pool
        self.hub = hub
        self.hub_enabled = hub is not None
        # WebSockets relayed on this path, told 1001 Going Away when the server stops.
        self.websockets: set[ByteRelay] = set()
        # Every relayed WebSocket on either lane with its opening request, so it ends
        # with its session (sessions_changed).
        self.open_websockets = OpenWebSockets()
        self._recheck_due = False
        self.request_ids = RequestIds()
        hub_path = settings.hub_prefix.rstrip("/")
        self._hub_paths = (hub_path + "/", hub_path)
        # "Home" on the edge's pages is the hub's home page, when there is a hub.
        self.pages = ErrorPages(error_look, home=f"{hub_path}/home" if self.hub_enabled else None)

    def response_lines(self, scheme: str) -> bytes:
        """Header lines (CRLF-ended) the fast lane adds to every answer on a `scheme` listener."""
        hsts = self.settings.hsts_header()
        if scheme == "https" and hsts is not None:
            return b"Strict-Transport-Security: " + hsts.encode() + b"\r\n"
        return b""

    # aiohttp's marker for a new-style middleware: the Edge itself is the middleware.
    __middleware_version__ = 1

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        outcome = _Outcome()
        # One id per request, for the pod, the response and every log line of this task.
        request_id = self.request_ids.choose(
            request.headers.get(REQUEST_ID_HEADER),
            self.settings.is_trusted_proxy(request.remote),
        )
        request[REQUEST_ID_KEY] = request_id
        current_request_id.set(request_id)
        try:
            response = await self.dispatch(request, handler, outcome)
            outcome.status = response.status
            return response
        except web.HTTPException as e:
            outcome.status = e.status
            raise
        except asyncio.CancelledError:
            outcome.status = CLIENT_CLOSED  # the browser left; nobody saw an answer
            raise
        finally:
            method = request.method if request.method in _KNOWN_METHODS else "other"
            self.stats.request_done(
                method, outcome.status, outcome.kind, time.monotonic() - started
            )

    def forwardable(self, host: str, raw_path: str, cookie_headers: Sequence[str]) -> Route | None:
        """The route this request may be forwarded to as it is, or None to let the full path answer.

        The one routing and authorization decision, shared by the aiohttp path and
        the fast lane (edge.fastlane). Hub paths get the hub's route (`self.hub.route`:
        relayed to the control plane, edge.hub_upstream). None covers every other
        answer (login or spawn redirect, 403, 404, bad target); whoever then answers counts its own
        cookie rejections, so rejections are counted here only when a route is returned.
        """
        if not raw_path.startswith("/"):
            return None
        path = normalise_path(raw_path)
        if self.settings.control_enabled and (
            path.startswith(self._hub_paths[0]) or path == self._hub_paths[1]
        ):
            return self.hub.route if self.hub is not None else None
        route = self.table.match_request(host, path)
        if route is None or not route.requires_session:
            return route
        sessions = self.sessions
        if sessions is None or not cookies_within_limits(cookie_headers):
            return None
        assert route.user is not None
        settings = self.settings
        values = session_values(cookie_headers, settings.cookie_name)
        if len(values) == 1:
            # The common case, one session cookie: no list of rejections to build.
            try:
                session = sessions.verify(values[0])
            except Exception:  # not forwardable; whoever answers counts the rejection
                return None
            policy = self.policy
            if policy is not None and not policy.admits(session.user, session.issued):
                return None
            return route if settings.may_access(session.user, route.user) else None
        rejected: list[str] = []
        found = self._verified_user(values, rejected)
        if found is None or not settings.may_access(found, route.user):
            return None
        for reason in rejected:
            self.stats.cookie_rejected(reason)
        return route

    async def dispatch(
        self, request: web.Request, handler: Handler, outcome: _Outcome
    ) -> web.StreamResponse:
        if request.version not in _SPOKEN_VERSIONS:
            response = self.pages.page(
                505, "HTTP version not supported", "This server speaks HTTP/1.x."
            )
            response.force_close()
            return response
        named = framing_named(request.headers.getall("Connection", ()))
        if named is not None:
            # Dropping it as hop-by-hop would change how the message is delimited.
            log.info(
                "refused %s %s: the Connection header names %s",
                request.method,
                request.raw_path,
                named,
            )
            response = self.pages.page(
                400, "Bad request", f"The Connection header may not name {named}."
            )
            response.force_close()
            return response
        cookies = request.headers.getall("Cookie", ())
        if not cookies_within_limits(cookies):
            # Before any value is split out or verified, for every path (the hub's too).
            response = self.pages.page(
                431,
                "Request header fields too large",
                "This request carries more cookies than a browser sends. "
                "Clear this site's cookies and try again.",
            )
            response.force_close()
            return response
        raw = request.raw_path
        route = self.forwardable(request.host, raw, cookies)
        if route is not None and self.hub is not None and route is self.hub.route:
            outcome.kind = "hub"
            return await self._to_hub(request, handler)
        if route is not None:
            outcome.kind = route_kind(route)
            route.last_activity = time.time()
            return await self._forward(request, route, raw)
        return await self._answer(request, handler, outcome, raw)

    async def _answer(
        self, request: web.Request, handler: Handler, outcome: _Outcome, raw: str
    ) -> web.StreamResponse:
        """Every request that is not forwarded as it is: hub, redirects, 403, 404, 400."""
        if not raw.startswith("/"):
            response = self.pages.page(
                400, "Bad request", "Only origin-form request targets are served."
            )
            response.force_close()
            return response
        path = normalise_path(raw)
        settings = self.settings

        if settings.control_enabled and (
            path.startswith(self._hub_paths[0]) or path == self._hub_paths[1]
        ):
            outcome.kind = "hub"
            return await self._to_hub(request, handler)

        route = self.table.match_request(request.host, path)
        if route is None:
            return await self._unrouted(request, handler, path, raw)
        outcome.kind = route_kind(route)

        if route.requires_session:
            user = self._session_user(request) or self._bearer_user(request)
            if user is None:
                return self._to_login(raw, path)
            assert route.user is not None
            if not settings.may_access(user, route.user):
                self.stats.cookie_rejected("wrong_user")
                return self.pages.forbidden()

        route.last_activity = time.time()
        return await self._forward(request, route, raw)

    async def _forward(self, request: web.Request, route: Route, raw: str) -> web.StreamResponse:
        websocket = wants_websocket(request.headers)
        if (
            route.requires_session
            and needs_origin_check(request.method, websocket)
            and not self.permits_origin(self._origin_claims(request))
        ):
            response = self.pages.cross_origin()
            if websocket:
                response.force_close()  # nothing after a refused upgrade is read as a request
            return response
        token = route.data.get("token")
        headers = upstream_request_headers(
            request.headers,
            peer=request.remote,
            scheme=request.scheme,
            settings=self.settings,
            pod_token=token if isinstance(token, str) else None,
        )
        # Replaces any id the client sent; set by __call__, which every request passes.
        headers[REQUEST_ID_HEADER] = request.get(REQUEST_ID_KEY) or self.request_ids.new()
        upstream_path = route.target.base_path + raw
        if websocket:
            relays = TrackedRelays(
                self.websockets,
                self.open_websockets,
                request.host,
                raw,
                # Only the Cookie headers that carry the session: what forwardable reads.
                [c for c in request.headers.getall("Cookie", ()) if self.settings.cookie_name in c],
            )
            return await relay_websocket(
                request,
                route,
                upstream_path,
                headers,
                self.stats,
                self.settings,
                relays,
                pages=self.pages,
            )
        response = await proxy_http(
            request,
            route,
            upstream_path,
            headers,
            self.pool,
            self.stats,
            self.settings.reserved_cookies,
            pages=self.pages,
        )
        if "Upgrade" in request.headers:
            # aiohttp keeps the bytes after any upgrade request (h2c...) for the new
            # protocol; served without upgrading, the connection must not carry more.
            response.force_close()
        return response

    async def _unrouted(
        self, request: web.Request, handler: Handler, path: str, raw: str
    ) -> web.StreamResponse:
        if not self.settings.control_enabled:
            return self.pages.not_found()
        parts = path.split("/", 3)
        if len(parts) >= 3 and parts[1] == "user" and parts[2]:
            # A user's server with no ready route: start it if we know who is asking.
            if self._session_user(request) is not None:
                spawn = f"{self.settings.spawn_path}/{quote(parts[2], safe='')}"
                return _redirect(f"{spawn}?next={_next_param(raw, path)}")
            return self._to_login(raw, path)
        return await self._to_hub(request, handler)

    async def _to_hub(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Relayed to the hub (the control plane's app on its own loop), answer and all."""
        hub = self.hub
        if hub is None:
            return self.pages.page(404, "Not found", "The control plane is not available here.")
        headers = hub_request_headers(request.headers, peer=request.remote, scheme=request.scheme)
        headers[REQUEST_ID_HEADER] = request.get(REQUEST_ID_KEY) or self.request_ids.new()
        # The hub sets and clears podgate's own cookies: none is reserved from it.
        response = await proxy_http(
            request,
            hub.route,
            request.raw_path,
            headers,
            self.pool,
            self.stats,
            frozenset(),
            pages=self.pages,
        )
        if "Upgrade" in request.headers:
            response.force_close()  # as for pods: nothing after an unserved upgrade is read
        return response

    def _to_login(self, raw: str, path: str) -> web.StreamResponse:
        return _redirect(f"{self.settings.login_path}?next={_next_param(raw, path)}")

    def permits_origin(self, claims: OriginClaims) -> bool:
        """Whether a change or handshake to a user's server may go on (edge.origin's rules).

        Asked by both lanes, only for routes that need a session and only for unsafe
        methods and upgrades (edge.origin.needs_origin_check): plain GETs never pay.
        """
        return from_permitted_origin(claims, self.settings.allowed_origins)

    def _origin_claims(self, request: web.Request) -> OriginClaims:
        headers = request.headers
        scheme, host = request.scheme, request.host
        if self.settings.is_trusted_proxy(request.remote):
            scheme = first_value(headers.get("X-Forwarded-Proto")) or scheme
            host = first_value(headers.get("X-Forwarded-Host")) or host
        return OriginClaims(
            scheme=scheme,
            host=host,
            origin=headers.get("Origin"),
            fetch_site=headers.get("Sec-Fetch-Site"),
            authorization=headers.get("Authorization"),
        )

    def _session_user(self, request: web.Request) -> str | None:
        """The user of the first valid session cookie, or None; bad cookies are counted."""
        rejected: list[str] = []
        values = session_cookie_values(request.headers, self.settings.cookie_name)
        user = self._verified_user(values, rejected)
        for reason in rejected:
            self.stats.cookie_rejected(reason)
        return user

    def _bearer_user(self, request: web.Request) -> str | None:
        """The user of a personal API token in the Authorization header, if it may use servers."""
        header = request.headers.get("Authorization")
        if self.token_user is None or header is None:
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() not in ("token", "bearer") or not token.strip():
            return None
        return self.token_user(token.strip())

    def _verified_user(self, values: Iterable[str], rejected: list[str]) -> str | None:
        """The user of the first value that verifies; reasons of those that did not, in order."""
        if self.sessions is None:
            return None
        policy = self.policy
        for value in values:
            try:
                session = self.sessions.verify(value)
            except Exception as e:  # any failure to verify is "no session", never a 500
                rejected.append(getattr(e, "reason", "malformed"))
                continue
            if policy is None or policy.admits(session.user, session.issued):
                return session.user
            rejected.append("revoked")  # signed out since, or no longer allowed
        return None

    def sessions_changed(self) -> None:
        """Some sessions may have ended (the wiring calls this on a sign-out or a reload):
        soon, once for a burst of calls, every open WebSocket whose handshake would now be
        refused is told 1001 Going Away."""
        if self._recheck_due:
            return
        self._recheck_due = True
        try:
            asyncio.get_running_loop().call_soon(self._recheck_websockets)
        except RuntimeError:  # no loop running (a test's reload): now
            self._recheck_websockets()

    def _recheck_websockets(self) -> None:
        self._recheck_due = False

        def still_allowed(host: str, raw_path: str, cookies: Sequence[str]) -> bool:
            return self.forwardable(host, raw_path, cookies) is not None

        ended = self.open_websockets.recheck(still_allowed)
        if ended:
            log.info("%d WebSocket(s) closed: their sessions ended", ended)

    async def go_away(self, _app: web.Application | None = None) -> None:
        """The server stops (on_shutdown): every relayed WebSocket gets 1001 Going Away."""
        for relay in list(self.websockets):
            relay.go_away()

    async def close(self, _app: web.Application | None = None) -> None:
        await self.pool.close()


def route_kind(route: Route) -> str:
    """The route kind label of the metrics ("user", "api", "config", "hub")."""
    if route.target is HUB_TARGET:
        return "hub"
    return _KIND_OF_SOURCE.get(route.source, "none")


def _next_param(raw: str, path: str) -> str:
    """The original path and query, relative and URL-encoded; never a "//host" redirect."""
    target = raw if not raw.startswith("//") else path
    if target.startswith("//"):
        target = "/"
    return quote(target, safe="")


async def _hub_not_found(request: web.Request) -> web.StreamResponse:
    """Reached only for paths the edge hands to the hub and the hub has no route for."""
    return request.app[EDGE_KEY].pages.page(404, "Not found", "There is nothing here.")


async def _return_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer carries the request's id back, whoever made it (edge, pod or hub)."""
    request_id = request.get(REQUEST_ID_KEY)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id
    if request.secure:  # the connection itself is TLS (edge.tls), not a proxy's claim
        hsts = request.app[EDGE_KEY].settings.hsts_header()
        if hsts is not None:
            response.headers["Strict-Transport-Security"] = hsts  # replaces a pod's own


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


def build_public_app(
    *,
    table: RouteTable,
    settings: EdgeSettings,
    stats: EdgeStats,
    sessions: SessionVerifier | None,
    hub: HubUpstream | None = None,
    pool: PodPool | None = None,
    policy: SessionPolicy | None = None,
    error_look: ErrorPageLook = PLAIN_LOOK,
    token_user: TokenUser | None = None,
) -> web.Application:
    """The Application to serve on the public port.

    With the control plane enabled and `hub` given, hub paths (and whatever
    is neither routed nor a user's server) are relayed to the hub over `hub`'s
    connections (edge.hub_upstream); without it they get a 404. `policy` (the control plane's
    sign-out records and allowed users) is asked about every verified
    session; None admits every one. The upstream pool is closed
    on the app's cleanup. Serve it with handler_cancellation=True so a
    browser hanging up cancels the upstream request at once. `error_look`:
    how the edge's own error pages look (the wiring passes the hub's).
    `token_user` names the user of a personal API token for requests to user
    servers that carry no session (the aiohttp path only; the fast lane hands
    such requests over).
    """
    edge = Edge(
        table=table,
        settings=settings,
        stats=stats,
        sessions=sessions,
        pool=pool or PodPool(settings.upstream, dial=hub.dial() if hub is not None else None),
        hub=hub if settings.control_enabled else None,
        policy=policy,
        error_look=error_look,
        token_user=token_user,
    )
    app = web.Application()
    app.middlewares.insert(0, edge)
    # Every request is resolved by the router before the edge sees it; with no
    # match aiohttp builds an HTTPNotFound per request, which costs more than the
    # proxying itself. A last catch-all route makes proxied paths a cheap match.
    app.router.add_route("*", "/{podgate_unmatched:.*}", _hub_not_found)
    app.on_response_prepare.append(_return_request_id)
    app.on_shutdown.append(edge.go_away)
    app.on_cleanup.append(edge.close)
    app[EDGE_KEY] = edge
    return app


def edge_of(app: web.Application) -> Any:
    """The Edge inside an app built by build_public_app (for the wiring and tests)."""
    return app[EDGE_KEY]
