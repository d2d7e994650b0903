"""The hub served to the edge alone, over socketpairs, on the control plane's loop.

The edge runs on its own thread (podgate.edge_thread) and relays hub
requests like any upstream (edge.hub_upstream). Each connection it opens is
one end of a fresh socketpair; the other end is handed to this loop's aiohttp
server for the hub app. A socketpair has no address: no pod, no browser and
no other process can connect, which is why the hub may believe the headers
the edge sets (the browser's address and scheme, the request id).

`HubLink.connect` is called on the edge's thread; everything else runs on
the control plane's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from aiohttp import web
from aiohttp.typedefs import Handler

from edge.errors import ErrorPageLook, ErrorPages
from edge.hub_upstream import PEER_HEADER, SCHEME_HEADER
from edge.request_id import HEADER as REQUEST_ID_HEADER
from edge.request_id import current_request_id


@web.middleware
async def as_the_edge_saw_it(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request with the browser's address and scheme the edge saw, its id in the logs."""
    headers = request.headers.copy()
    peer = headers.popall(PEER_HEADER, [""])[-1]
    scheme = headers.popall(SCHEME_HEADER, ["http"])[-1]
    current_request_id.set(headers.get(REQUEST_ID_HEADER))
    seen = request.clone(headers=headers, remote=peer or None, scheme=scheme)
    return await handler(seen)


class HubLink:
    """Serves `app` (the hub) to whoever holds the edge's end of each socketpair."""

    def __init__(self, app: web.Application, look: ErrorPageLook, hub_prefix: str) -> None:
        app.middlewares.insert(0, as_the_edge_saw_it)
        pages = ErrorPages(look, home=hub_prefix.rstrip("/") + "/home")

        async def nothing_here(_request: web.Request) -> web.StreamResponse:
            # Paths the edge relays (/hub/..., and unroutable ones) the hub has no route for.
            return pages.page(404, "Not found", "There is nothing here.")

        app.router.add_route("*", "/{podgate_unmatched:.*}", nothing_here)
        # A browser hanging up cancels its hub handler, as on the public port.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting: set[asyncio.Task[object]] = set()

    async def start(self) -> None:
        await self._runner.setup()
        self._loop = asyncio.get_running_loop()

    def connect(self) -> socket.socket:
        """A new connection to the hub (from any thread): the edge's end of a socketpair."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise ConnectionRefusedError("the hub is not running")
        edge_end, hub_end = socket.socketpair()
        try:
            loop.call_soon_threadsafe(self._accept, hub_end)
        except RuntimeError as e:  # the control plane's loop closed meanwhile
            edge_end.close()
            hub_end.close()
            raise ConnectionRefusedError("the hub is not running") from e
        return edge_end

    def _accept(self, hub_end: socket.socket) -> None:
        server = self._runner.server
        if server is None:  # stopped meanwhile: the edge sees the connection close
            hub_end.close()
            return
        assert self._loop is not None
        task = self._loop.create_task(self._loop.connect_accepted_socket(server, hub_end))
        self._accepting.add(task)
        task.add_done_callback(self._accepting.discard)

    async def stop(self) -> None:
        """Close every hub connection (the edge closed its side first) and the hub app."""
        for task in list(self._accepting):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        self._loop = None
        await self._runner.cleanup()
