"""A pod's refusal of a WebSocket upgrade (any answer but 101), relayed to the browser as it came.

Status, headers (through the edge's response header rules) and body are
streamed, with the body framed as the pod framed it (Content-Length,
chunked, or until the pod closes). A body the pod cuts short ends the
browser's connection too, so the browser never waits for bytes that will
not come. Never buffers a whole body; never decodes WebSocket frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from edge.headers import client_response_headers
from edge.websocket.handshake import PodResponseHead
from edge.websocket.relay import PodLink

READ_SIZE = 64 * 1024
MAX_CHUNK_LINE = 4096


class _BodyCut(Exception):
    """The pod's body ended before its framing said it would, or its framing was broken."""


async def relay_refusal(
    request: web.BaseRequest,
    pod: PodLink,
    head: PodResponseHead,
    read_timeout: float,
    reserved_cookies: frozenset[str],
) -> web.StreamResponse:
    """Send the pod's non-101 answer to the browser; the pod connection is closed afterwards."""
    response = web.StreamResponse(
        status=head.status,
        reason=head.reason or None,
        headers=client_response_headers(head.headers.items(), reserved_cookies),
    )
    response.headers.popall("Content-Length", None)  # set below from the framing relayed
    chunked = "chunked" in head.headers.get("Transfer-Encoding", "").lower()
    length = head.headers.get("Content-Length", "").strip()
    remaining: int | None = None
    if head.status in (204, 304):
        remaining = 0
    elif not chunked and length.isdigit():
        remaining = int(length)
        response.content_length = remaining
    try:
        await response.prepare(request)
        body = _chunked(pod, read_timeout) if chunked else _sized(pod, remaining, read_timeout)
        async for piece in body:
            await response.write(piece)
    except _BodyCut:
        # The browser was promised more than the pod sent: end its connection.
        if request.transport is not None:
            request.transport.close()
        return response
    finally:
        pod.close()
    await response.write_eof()
    return response


async def _fill(pod: PodLink, read_timeout: float) -> bool:
    """Wait for more pod bytes; False when the pod has closed or stayed silent too long."""
    if pod.closed:
        return False
    before = len(pod.buffered)
    try:
        async with asyncio.timeout(read_timeout):
            await pod.wait_for_data()
    except TimeoutError:
        return False
    return len(pod.buffered) > before


async def _sized(pod: PodLink, remaining: int | None, read_timeout: float) -> AsyncIterator[bytes]:
    """`remaining` bytes, or everything until the pod closes when it is None."""
    while remaining is None or remaining > 0:
        if not pod.buffered and not await _fill(pod, read_timeout):
            if remaining is None:
                return
            raise _BodyCut(f"{remaining} bytes missing")
        piece = pod.take_buffered(READ_SIZE if remaining is None else min(remaining, READ_SIZE))
        if remaining is not None:
            remaining -= len(piece)
        yield piece


async def _chunked(pod: PodLink, read_timeout: float) -> AsyncIterator[bytes]:
    while True:
        size_line = await _line(pod, read_timeout)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as e:
            raise _BodyCut("bad chunk size") from e
        if size < 0:
            raise _BodyCut("bad chunk size")
        if size == 0:
            return  # trailers, if any, are not relayed
        async for piece in _sized(pod, size, read_timeout):
            yield piece
        if await _line(pod, read_timeout) != b"":
            raise _BodyCut("chunk not followed by CRLF")


async def _line(pod: PodLink, read_timeout: float) -> bytes:
    """One CRLF-terminated line of chunked framing, without its CRLF."""
    while True:
        end = pod.buffered.find(b"\r\n")
        if end >= 0:
            return pod.take_buffered(end + 2)[:-2]
        if len(pod.buffered) > MAX_CHUNK_LINE or not await _fill(pod, read_timeout):
            raise _BodyCut("chunk line missing")
