"""Background work of the control plane: one named task per job, started once, stopped cleanly.

`BackgroundTask` owns one asyncio task (named, so a failure names its job);
`rounds` is the loop of the periodic jobs (activity writes, culling): one
round every few seconds, and an unexpected error in a round is logged and
the next round runs anyway. Nothing here knows what the jobs do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


class BackgroundTask:
    """One named task: start() once (again only after stop()), stop() cancels and waits."""

    def __init__(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)  # type: ignore[arg-type]

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def rounds(
    interval: Callable[[], float], one_round: Callable[[], Awaitable[object]], log: logging.Logger
) -> None:
    """Sleep `interval()` seconds, run `one_round`, forever; a failed round is logged, not fatal."""
    while True:
        await asyncio.sleep(interval())
        try:
            await one_round()
        except Exception:  # supervised: one bad round must not end the job
            log.exception("%s: a round failed unexpectedly", asyncio.current_task().get_name())  # type: ignore[union-attr]
