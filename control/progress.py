"""SpawnProgress: what each user's current start has been through, for the spawn page to follow.

The spawner publishes; the progress stream (Server-Sent Events in
JupyterHub's format) follows: everything so far, then live, ending after
the ready or failed event. Memory stays bounded: each start keeps its last
`max_events` events, and a finished start is forgotten `keep_finished`
seconds after it ended. No I/O and no background task here: pruning happens
when events are published.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

PRUNE_EVERY = 1.0  # seconds between walks over the held starts


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One step of a start, as JupyterHub's progress API sends it."""

    progress: int  # 0-100
    message: str  # plain words for the person waiting
    ready: bool = False
    failed: bool = False
    url: str | None = None
    detail: str = ""  # the cluster's raw Event text: for admins only (as_json(detail=True))

    @property
    def final(self) -> bool:
        return self.ready or self.failed

    def as_json(self, detail: bool = False) -> dict[str, Any]:
        """The event as JupyterHub's /users/<name>/server/progress sends it.

        With `detail` (an admin asking) the raw Event text is added as "detail".
        """
        out: dict[str, Any] = {"progress": self.progress, "message": self.message}
        if detail and self.detail:
            out["detail"] = self.detail
        if self.ready:
            out["ready"] = True
        if self.failed:
            out["failed"] = True
        if self.url is not None:
            out["url"] = self.url
        return out


@dataclass(eq=False)
class _Start:
    """One start of one user's server: its events and who is waiting for more."""

    events: deque[ProgressEvent]
    dropped: int = 0  # events pushed out of the deque, so followers keep their place
    ended_at: float | None = None
    followers: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def total(self) -> int:
        return self.dropped + len(self.events)

    def wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class SpawnProgress:
    """Per user, the ordered progress events of the current (or last) start."""

    def __init__(
        self,
        *,
        max_events: int = 100,
        keep_finished: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_events = max_events
        self.keep_finished = keep_finished
        self._clock = clock
        self._starts: dict[str, _Start] = {}
        self._next_prune = float("-inf")
        self._closed = False

    def __contains__(self, user: str) -> bool:
        return user in self._starts

    def __len__(self) -> int:
        return len(self._starts)

    def reset(self, user: str) -> None:
        """A new start begins: forget the last one (its followers move on to this one)."""
        self._prune()
        old = self._starts.get(user)
        self._starts[user] = _Start(deque(maxlen=self.max_events))
        if old is not None:
            old.wake()

    def publish(self, user: str, event: ProgressEvent) -> None:
        """Add an event to the user's current start; ignored once that start has ended."""
        self._prune()
        start = self._starts.get(user)
        if start is None:
            start = self._starts[user] = _Start(deque(maxlen=self.max_events))
        if start.ended_at is not None:
            return  # late news (an Event after Ready) must not reopen a finished start
        if start.events and not event.final:
            # The bar never goes backwards, whatever order Events arrive in.
            event = dataclasses.replace(
                event, progress=max(event.progress, start.events[-1].progress)
            )
        if len(start.events) == start.events.maxlen:
            start.dropped += 1
        start.events.append(event)
        if event.final:
            start.ended_at = self._clock()
        start.wake()

    def events(self, user: str) -> list[ProgressEvent]:
        """The events of the user's current start still held (oldest first)."""
        start = self._starts.get(user)
        return list(start.events) if start is not None else []

    def last(self, user: str) -> ProgressEvent | None:
        start = self._starts.get(user)
        return start.events[-1] if start is not None and start.events else None

    async def follow(self, user: str) -> AsyncIterator[ProgressEvent]:
        """What happened so far, then each new event; ends after a ready or failed one.

        With no start recorded yet, waits for one. The caller bounds the wait
        (the client hanging up cancels it).
        """
        start = self._starts.get(user)
        if start is None:
            start = self._starts[user] = _Start(deque(maxlen=self.max_events))
        position = 0  # index over the whole start, dropped events included
        start.followers += 1
        try:
            while not self._closed:
                current = self._starts.get(user)
                if current is not start:
                    if current is None:
                        return  # forgotten after it finished
                    start.followers -= 1
                    start, position = current, 0  # a new start began: follow that one
                    start.followers += 1
                position = max(position, start.dropped)
                while position < start.total:
                    event = start.events[position - start.dropped]
                    position += 1
                    yield event
                    if event.final:
                        return
                await start.changed.wait()
        finally:
            start.followers -= 1
            # The last follower giving up on a start that never began leaves nothing behind.
            if self._starts.get(user) is start and not start.events and not start.followers:
                del self._starts[user]

    def close(self) -> None:
        """End every follow() (podgate is stopping: progress pages must not hold the drain)."""
        self._closed = True
        for start in self._starts.values():
            start.wake()

    def _prune(self) -> None:
        """Forget starts that ended more than keep_finished seconds ago.

        Walks every start, so it runs at most once a second: called per event,
        it made a storm of N spawns cost N² (3% of podgate's time at 1,000).
        """
        now = self._clock()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY
        cutoff = now - self.keep_finished
        stale = [
            user
            for user, start in self._starts.items()
            if start.ended_at is not None and start.ended_at < cutoff
        ]
        for user in stale:
            self._starts.pop(user).wake()
