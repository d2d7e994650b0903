"""Pacing of pod creates: at most `rate` a second, the rest wait their turn in order.

The concurrency limit caps how many starts are under way; pacing spreads
how fast new ones begin, so a storm of sign-ins becomes a steady stream of
work for the event loop the proxy shares, instead of a burst. Pure timing:
no I/O, no knowledge of pods.
"""

from __future__ import annotations

import asyncio
import time


class StartPacer:
    """Hands out start times `1/rate` seconds apart; `rate` None means no pacing."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._next = 0.0

    def delay(self) -> float:
        """Seconds the caller must wait for its turn (0 when it may go now); books the turn."""
        if self.rate is None:
            return 0.0
        now = time.monotonic()
        turn = max(now, self._next)
        self._next = turn + 1.0 / self.rate
        return turn - now

    async def wait(self) -> None:
        seconds = self.delay()
        if seconds > 0:
            await asyncio.sleep(seconds)
