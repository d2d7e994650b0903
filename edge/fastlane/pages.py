"""The edge's error pages as the bytes of whole HTTP/1.1 responses, for the fast lane.

The pages themselves (their status, look and text) are edge.errors'; this only
writes them out, since the fast lane answers with bytes, not web.Response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.errors import PLAIN_PAGES, ErrorPages, UpstreamError

if TYPE_CHECKING:
    from aiohttp import web


def error_page(
    error: type[UpstreamError] | UpstreamError,
    *,
    close: bool = False,
    pages: ErrorPages = PLAIN_PAGES,
) -> bytes:
    """A whole HTTP/1.1 response for an upstream failure, as the edge's `pages` render it."""
    instance = error if isinstance(error, UpstreamError) else error("")
    return whole_response(pages.upstream(instance), close=close)


def whole_response(response: web.Response, *, close: bool = False) -> bytes:
    """An edge.errors page as the bytes of a whole HTTP/1.1 response."""
    body = response.body
    assert isinstance(body, bytes)
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    lines.extend(f"{name}: {value}" for name, value in response.headers.items())
    lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
