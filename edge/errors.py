"""The edge's own failure types, and the one place they become HTTP responses.

Upstream failures are raised as UpstreamError subclasses (the pool translates
socket and parser errors into them, chaining the cause); the handler turns them
into pages here, with CHP's status codes: 503 when the pod cannot be reached,
504 when it is too slow, 502 when it answers nonsense. Every page offers a
way back (try again, home). Their look is handed in (ErrorPageLook): the
wiring passes the hub's, so the edge never imports the control plane.
Nothing here does I/O and nothing here logs: expected failures are not
stack traces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class PageLink:
    """A way back from an error page. `href` "" is this same address (try again)."""

    label: str
    href: str


@dataclass(frozen=True)
class ErrorPageLook:
    """How the edge's own error pages look: a renderer and the headers sent with its pages.

    The edge must not import the control plane; the wiring passes the hub's
    layout in here so both sides' pages look alike. `render(status, title,
    message, links, refresh_seconds)` returns a whole HTML document and must
    escape every text it is given.
    """

    render: Callable[[int, str, str, Sequence[PageLink], int | None], str]
    headers: Mapping[str, str]


def plain_document(
    status: int, title: str, message: str, links: Sequence[PageLink], refresh: int | None
) -> str:
    """A small unstyled page (proxy-only mode has no hub to lend its look)."""
    meta = f"<meta http-equiv='refresh' content='{refresh}'>" if refresh else ""
    ways = " ".join(f"<a href='{escape(link.href)}'>{escape(link.label)}</a>" for link in links)
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'>{meta}"
        f"<title>{status} {escape(title)}</title></head>"
        f"<body><h1>{status} {escape(title)}</h1><p>{escape(message)}</p>"
        f"{f'<p>{ways}</p>' if ways else ''}</body></html>\n"
    )


PLAIN_LOOK = ErrorPageLook(
    render=plain_document,
    headers={
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
    },
)
TRY_AGAIN = "Try again"


class ErrorPages:
    """The edge's error answers as pages in one look, each with a way back.

    `home`: where "Home" leads (the hub's home page); None in proxy-only
    mode, where the edge knows no page that exists.
    """

    def __init__(self, look: ErrorPageLook = PLAIN_LOOK, home: str | None = None) -> None:
        self.look = look
        self.home = home

    def _home(self) -> list[PageLink]:
        return [PageLink("Home", self.home)] if self.home else []

    def page(
        self,
        status: int,
        title: str,
        message: str,
        retry_after: int | None = None,
        links: Sequence[PageLink] | None = None,
    ) -> web.Response:
        """An HTML error page; with `retry_after` it says when to retry and reloads then."""
        shown = self._home() if links is None else list(links)
        body = self.look.render(status, title, message, shown, retry_after)
        headers = {**self.look.headers, "Cache-Control": "no-store"}
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        return web.Response(status=status, text=body, content_type="text/html", headers=headers)

    def upstream(self, error: UpstreamError) -> web.Response:
        retry = UNAVAILABLE_RETRY_SECONDS if isinstance(error, UpstreamUnavailable) else None
        links = [PageLink(TRY_AGAIN, ""), *self._home()]
        return self.page(error.status, error.title, error.advice, retry, links)

    def not_found(self) -> web.Response:
        return self.page(404, "Not found", "No route matches this path.")

    def forbidden(self) -> web.Response:
        return self.page(403, "Forbidden", "This server belongs to another user.")

    def cross_origin(self) -> web.Response:
        return self.page(
            403,
            "Cross-origin request refused",
            "This request to a user's server came from a page of another site. podgate "
            "forwards changes and WebSocket connections only from its own pages. If that "
            "site is yours, an operator can list its origin in edge.allowed_origins.",
        )


PLAIN_PAGES = ErrorPages()


def page(status: int, title: str, message: str, retry_after: int | None = None) -> web.Response:
    """A plain error page (PLAIN_PAGES.page), for callers without an Edge at hand."""
    return PLAIN_PAGES.page(status, title, message, retry_after)


# Seconds before a browser retries a pod that refused: by then a pod that died
# has lost its route (the pod watch) and the retry lands on the spawn page.
UNAVAILABLE_RETRY_SECONDS = 2


def upstream_error_response(error: UpstreamError) -> web.Response:
    """The plain page for an upstream failure (ErrorPages.upstream in the edge's own look)."""
    return PLAIN_PAGES.upstream(error)
