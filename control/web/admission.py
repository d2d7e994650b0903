"""Admission for hub requests: at most a few handled at once, the rest wait their turn.

The hub shares one event loop with the proxy. A storm of sign-ins and spawns
would otherwise put hundreds of hub handlers on the loop's ready queue at
once, and every proxied request of a running user would wait behind them.
Waiting here costs no CPU, so the proxy keeps its latency while the hub works
through the queue. A request comes here only once its body has arrived
(control.web.body_arrival runs first): a slow client never holds a place.
Long-lived answers (progress streams) and static files do
not take a place: they would hold one for minutes.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler

# Hub handlers running at once. Each mostly waits on the Kubernetes API or a
# password hash, so a small number keeps the hub's throughput (hundreds of
# spawns a second) and the proxy's latency.
HUB_CONCURRENCY = 16

_UNLIMITED_SUFFIXES = ("/server/progress",)
_UNLIMITED_PREFIXES = ("/hub/static/",)


def admission(limit: int = HUB_CONCURRENCY) -> web.middleware:  # type: ignore[valid-type]
    """The middleware; one semaphore per hub app, made when the first request comes."""
    places: list[asyncio.Semaphore] = []

    @web.middleware
    async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.endswith(_UNLIMITED_SUFFIXES) or path.startswith(_UNLIMITED_PREFIXES):
            return await handler(request)
        if not places:
            places.append(asyncio.Semaphore(limit))
        async with places[0]:
            return await handler(request)

    return admit
