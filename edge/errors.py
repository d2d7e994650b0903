"""The edge's own failure types, and the one place they become HTTP responses.

Upstream failures are raised as UpstreamError subclasses (the pool translates
socket and parser errors into them, chaining the cause); the handler turns them
into pages here, with CHP's status codes: 503 when the pod cannot be reached,
504 when it is too slow, 502 when it answers nonsense. Nothing here does I/O
and nothing here logs: expected failures are not stack traces.
"""

from __future__ import annotations

from html import escape

from aiohttp import web


class UpstreamError(Exception):
    """A pod could not be used for this request. `kind` is a metrics.edge_stats error kind."""

    status = 502
    kind = "protocol"
    title = "Bad gateway"
    advice = "Your server sent a response the proxy could not understand."


class UpstreamUnavailable(UpstreamError):
    """Connecting was refused, the host was unreachable, or the connection dropped early."""

    status = 503
    kind = "refused"
    title = "Service unavailable"
    advice = (
        "Your server is not running or is not accepting connections right now. "
        "It may still be starting, or it may have stopped. Try again in a moment."
    )

    def __init__(self, message: str, *, kind: str = "refused") -> None:
        super().__init__(message)
        self.kind = kind


class UpstreamTimeout(UpstreamError):
    """The pod took longer than the configured timeout to connect or to answer."""

    status = 504
    kind = "timeout"
    title = "Gateway timeout"
    advice = "Your server took too long to respond."


class UpstreamProtocolError(UpstreamError):
    """The pod's response was not valid HTTP."""


def page(status: int, title: str, message: str, retry_after: int | None = None) -> web.Response:
    """A small HTML error page; never includes anything but escaped text.

    With `retry_after` the page says when to try again (Retry-After) and a
    browser reloads it by itself then.
    """
    refresh = f"<meta http-equiv='refresh' content='{retry_after}'>" if retry_after else ""
    body = (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'>{refresh}"
        f"<title>{status} {escape(title)}</title></head>"
        f"<body><h1>{status} {escape(title)}</h1><p>{escape(message)}</p></body></html>\n"
    )
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if retry_after:
        headers["Retry-After"] = str(retry_after)
    return web.Response(status=status, text=body, content_type="text/html", headers=headers)


# Seconds before a browser retries a pod that refused: by then a pod that died
# has lost its route (the pod watch) and the retry lands on the spawn page.
UNAVAILABLE_RETRY_SECONDS = 2


def upstream_error_response(error: UpstreamError) -> web.Response:
    retry = UNAVAILABLE_RETRY_SECONDS if isinstance(error, UpstreamUnavailable) else None
    return page(error.status, error.title, error.advice, retry)


def not_found_response() -> web.Response:
    return page(404, "Not found", "No route matches this path.")


def forbidden_response() -> web.Response:
    return page(403, "Forbidden", "This server belongs to another user.")


def cross_origin_response() -> web.Response:
    return page(
        403,
        "Cross-origin request refused",
        "This request to a user's server came from a page of another site. podgate "
        "forwards changes and WebSocket connections only from its own pages. If that "
        "site is yours, an operator can list its origin in edge.allowed_origins.",
    )
