"""The edge's own event loop, on a thread of its own.

A spawn storm is seconds of control-plane work (sign-ins, pod creates, watch
events, progress streams) in one burst; on a shared loop every proxied
request of the users already working waited behind it. The public listener
runs here instead, and the control plane keeps the main thread's loop: the
edge then waits for the interpreter lock at most one switch interval per
wake-up, never for the control plane's queue of callbacks.

The two loops meet only where the wiring says: the edge reads the route
table and the session policy (plain lookups, safe under the interpreter
lock), the hub is reached over podgate.hub_link, and callbacks into the edge
from the control plane go through `call_soon`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# Seconds a thread runs Python before a waiting one gets the interpreter lock
# (CPython's default is 5 ms, felt in every proxied request during a storm).
SWITCH_INTERVAL = 0.0005


def _new_loop_like(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
    """A fresh loop of the same kind as the caller's (uvloop when podgate runs on it)."""
    if type(loop).__module__.startswith("uvloop"):
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class EdgeLoop:
    """An event loop running on its own daemon thread until stopped."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread and its loop (call from the main loop)."""
        if self._thread is not None:
            return
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        loop = _new_loop_like(asyncio.get_running_loop())
        running = threading.Event()
        self.loop = loop

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(running.set)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=serve, name="podgate-edge", daemon=True)
        self._thread.start()
        if not running.wait(10):
            raise RuntimeError("the edge's event loop did not start")

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the edge's loop and wait for its result from the caller's loop."""
        assert self.loop is not None, "EdgeLoop.start() first"
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Call `callback` on the edge's loop (from any thread); a stopped loop drops it."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            # Closed meanwhile: nothing of the edge is left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback)

    async def stop(self) -> None:
        """Stop the loop and wait for the thread (the edge's servers are closed first)."""
        loop, thread = self.loop, self._thread
        self.loop, self._thread = None, None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, 10)
