"""Streaming HTTP proxying of one request to a pod, both directions.

The request body streams to the pod as it arrives, framed as the browser's
head framed it (its Content-Length, or chunks re-framed); the response
streams back chunk by chunk and is written to the browser as soon as it
arrives (so Server-Sent Events flow one by one),
with backpressure both ways. A pod that fails before answering becomes an
error page (edge.errors); one that fails mid-body, or a browser that hangs
up, closes both connections. This module never buffers a body whole and
never decides routing or authorization.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from multidict import CIMultiDict

from edge.errors import PLAIN_PAGES, ErrorPages, UpstreamError
from edge.headers import client_response_headers
from edge.upstream.exchange import PodExchange, send_request
from edge.upstream.pool import PodPool
from metrics.edge_stats import EdgeStats
from routes import Route

log = logging.getLogger(__name__)

_NO_BODY_STATUS = frozenset((204, 304))
# Bodies up to this size with a Content-Length are read whole and sent with the
# head in one write (one syscall instead of two); anything larger streams.
SMALL_BODY = 64 * 1024


class ClientGone(Exception):
    """The browser closed its side, or sent a body that broke off: nobody to answer."""


def request_head(method: str, path: str, headers: CIMultiDict[str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


async def _request_body(
    request: web.BaseRequest, stats: EdgeStats, chunked: bool
) -> AsyncIterator[bytes]:
    """The browser's body as it arrives, re-framed as chunks when it came chunked."""
    content = request.content
    while True:
        try:
            chunk = await content.readany()
        except Exception as e:  # a broken-off or malformed body: the client's fault
            raise ClientGone(f"request body broke off: {e!r}") from e
        if not chunk:
            break
        stats.bytes_to_upstream += len(chunk)
        yield b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk
    if chunked:
        yield b"0\r\n\r\n"


async def proxy_http(
    request: web.BaseRequest,
    route: Route,
    upstream_path: str,
    headers: CIMultiDict[str],
    pool: PodPool,
    stats: EdgeStats,
    reserved_cookies: frozenset[str],
    *,
    pages: ErrorPages = PLAIN_PAGES,
) -> web.StreamResponse:
    """Send one request to the route's pod and stream its answer back to the browser."""
    method = request.method
    target = route.target
    if "Host" not in headers:  # HTTP/1.0 clients may send none; the pod needs one
        headers["Host"] = f"{target.host}:{target.port}"

    body: AsyncIterator[bytes] | None = None
    if request.body_exists:
        # Framed as aiohttp's parser framed it, never as the filtered headers say.
        length = request.content_length
        chunked = length is None
        if chunked:
            headers.popall("Content-Length", None)
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(length)
        body = _request_body(request, stats, chunked)
    elif method in ("POST", "PUT", "PATCH"):
        headers["Content-Length"] = "0"

    try:
        upstream = await send_request(
            pool, target, request_head(method, upstream_path, headers), method=method, body=body
        )
    except UpstreamError as e:
        stats.upstream_error(e.kind)
        log.info("upstream %s for %s %s: %s", e.kind, method, route.path, e)
        return pages.upstream(e)
    except (ClientGone, ConnectionError) as e:
        log.debug("client went away while sending %s %s: %r", method, route.path, e)
        _cut_off(request)
        return web.Response(status=400)
    return await _relay_response(request, upstream, stats, reserved_cookies, pages)


async def _relay_response(
    request: web.BaseRequest,
    upstream: PodExchange,
    stats: EdgeStats,
    reserved_cookies: frozenset[str],
    pages: ErrorPages,
) -> web.StreamResponse:
    length = upstream.content_length
    if length is not None and length <= SMALL_BODY and request.method != "HEAD":
        return await _relay_small(upstream, stats, reserved_cookies, pages)
    response = web.StreamResponse(
        status=upstream.status,
        reason=upstream.reason or None,
        headers=client_response_headers(upstream.headers, reserved_cookies),
    )
    try:
        await response.prepare(request)
        if request.method != "HEAD" and upstream.status not in _NO_BODY_STATUS:
            async for chunk in upstream.chunks():
                stats.bytes_to_client += len(chunk)
                await response.write(chunk)
        await response.write_eof()
    except UpstreamError as e:
        # Headers are out: all we can do is cut the browser off so it sees a truncation.
        stats.upstream_error(e.kind)
        log.info("upstream %s mid-response on %s: %s", e.kind, request.path, e)
        upstream.discard()
        _cut_off(request)
        return response
    except (ConnectionError, ClientGone) as e:
        log.debug("client went away mid-response on %s: %r", request.path, e)
        upstream.discard()
        _cut_off(request)
        return response
    except BaseException:
        upstream.discard()  # cancelled (client hang-up) or a bug: never pool a half-read socket
        raise
    upstream.release()
    return response


async def _relay_small(
    upstream: PodExchange,
    stats: EdgeStats,
    reserved_cookies: frozenset[str],
    pages: ErrorPages,
) -> web.StreamResponse:
    """A small fixed-length answer: read it whole (bounded), then one write to the browser."""
    parts: list[bytes] = []
    try:
        async for chunk in upstream.chunks():
            parts.append(chunk)
    except UpstreamError as e:
        stats.upstream_error(e.kind)
        upstream.discard()
        return pages.upstream(e)
    except BaseException:
        upstream.discard()
        raise
    upstream.release()
    body = b"".join(parts)
    stats.bytes_to_client += len(body)
    headers = client_response_headers(upstream.headers, reserved_cookies)
    headers.popall("Content-Length", None)  # web.Response sets it from the body
    return web.Response(
        status=upstream.status, reason=upstream.reason or None, headers=headers, body=body
    )


def _cut_off(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()
