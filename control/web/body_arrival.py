"""Hub request bodies arrive whole before the request may take an admission place.

A handler that waits for a body holds its place in control.web.admission for
as long as the client takes to send it, so 16 clients trickling login bodies
a byte at a time stopped every hub page. This middleware, outside admission,
waits for the whole body first, bounded two ways:

- a deadline (BodyLimits.timeout): a body not complete by then is answered
  408 and the connection closed;
- a cap on bodies under way per client address (BodyLimits.per_address),
  the address as control.web.identity resolves it (X-Forwarded-For only
  through the edge's trusted proxies: the head is complete here, so an
  ingress's clients are told apart): past it, 429 and the connection closed.

A body with a declared length is waited for without being read, so handlers
read it as before (forms, multipart, JSON); it is at most client_max_size, which
aiohttp buffers without pausing the socket. A chunked body has no length to
wait for: it is read here (aiohttp keeps it for the handler), and its 413 comes
as soon as it passes the cap. A declared length over the cap is not waited
for: handlers refuse it before reading a byte (forms, JSON bodies).

Only /hub/ requests get here: proxied uploads to pods never pass this.
It never holds an admission place and never logs more than a line per refusal.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from control.web.answers import answer
from control.web.context import hub_of
from control.web.forms import too_large

log = logging.getLogger(__name__)

TOO_SLOW = "The request took too long to arrive. Try again."
TOO_MANY = "Too many requests are still arriving from your address. Try again in a moment."


@dataclass(frozen=True)
class BodyLimits:
    """How long a hub body may take to arrive, and how many may be under way per address."""

    timeout: float = 20.0
    per_address: int = 64


class BodyArrival:
    """The middleware; it counts bodies under way per client address."""

    __middleware_version__ = 1  # a new-style aiohttp middleware: (request, handler)

    def __init__(self, limits: BodyLimits) -> None:
        self.limits = limits
        self.arriving: dict[str, int] = {}  # only addresses with a body under way

    def under_way(self, address: str) -> int:
        return self.arriving.get(address, 0)

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.can_read_body:
            return await handler(request)  # no body (GET), or it is all here already
        declared = request.content_length
        if declared is not None and declared > request.client_max_size:
            return await handler(request)  # refused by the handler before it is read
        limits = self.limits
        address = hub_of(request).client_address(request)
        under_way = self.under_way(address)
        if under_way >= limits.per_address:
            log.info(
                "%s %s: %d bodies already under way from %s: 429",
                request.method,
                request.path,
                under_way,
                address,
            )
            refusal = answer(request, 429, TOO_MANY)
            refusal.headers["Retry-After"] = str(max(1, round(limits.timeout)))
            return _closing(refusal)
        self.arriving[address] = under_way + 1
        try:
            async with asyncio.timeout(limits.timeout):
                if declared is None:
                    await request.read()  # chunked: kept by aiohttp for the handler
                else:
                    await request.content.wait_eof()
        except TimeoutError:
            log.info(
                "%s %s: body from %s not complete after %g s: 408",
                request.method,
                request.path,
                address,
                limits.timeout,
            )
            return _closing(answer(request, 408, TOO_SLOW))
        except web.HTTPRequestEntityTooLarge:
            raise too_large(request.client_max_size, 0) from None
        finally:
            left = self.arriving[address] - 1
            if left:
                self.arriving[address] = left
            else:
                del self.arriving[address]
        return await handler(request)


def _closing(response: web.Response) -> web.Response:
    # The rest of the body may still come: it must not be read as a next request.
    response.force_close()
    return response
