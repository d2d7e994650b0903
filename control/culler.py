"""IdleCuller: the built-in idle culler, stopping servers idle too long or running too long.

Each round first decides, from memory only (the pod watch and the activity
tracker), which running servers to stop and why ("idle": no traffic for
`timeout` seconds, counting from when the server became ready if it never
had any; "max_age": started longer than `max_age` ago), then stops them
through the Spawner, at most `concurrency` at a time, checking each reason
again just before its stop.

Activity is traffic: an open WebSocket keeps a server only while frames
cross it (the edge counts them), so a forgotten idle tab does not keep a
server for ever. Only Ready servers are candidates: a server that is
starting is never culled. Replicas may each run a culler; two rounds
stopping the same server are harmless, as a stop of a pod already gone is
a no-op (each replica counts only the stops it made).

It never stops a server on a failed API call's guess, and a failure in one
round (a stop the API refused) is logged and leaves the loop running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from control.errors import KubeError
from control.names import split_key
from control.settings import CullerSettings
from control.spawner import Spawner
from control.stop_cause import StopCause
from control.tasks import BackgroundTask, rounds

log = logging.getLogger(__name__)

CullReason = Literal["idle", "max_age"]
# Metrics hook: observer(reason) once per server this replica stopped.
CullObserver = Callable[[str], None]


class LastActivity(Protocol):
    def last_activity(self, user: str) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Cull:
    user: str
    reason: CullReason


class IdleCuller:
    """Stops idle (or too old) servers every `settings.every` seconds in one named task."""

    def __init__(
        self,
        spawner: Spawner,
        activity: LastActivity,
        settings: CullerSettings,
        *,
        is_admin: Callable[[str], bool] = lambda user: False,
        observer: CullObserver | None = None,
    ) -> None:
        self.spawner = spawner
        self.activity = activity
        self.settings = settings
        self.is_admin = is_admin
        self.observer = observer
        self._task = BackgroundTask(
            "idle-culler", lambda: rounds(lambda: self.settings.every, self.cull_round, log)
        )

    # -- deciding ----------------------------------------------------------------------

    def reason(self, user: str, now: float) -> CullReason | None:
        """Why the server `user` (a server key: each named server is culled on its own)
        should stop now, or None to keep it."""
        settings = self.settings
        if not settings.cull_admin_users and self.is_admin(split_key(user)[0]):
            return None
        status = self.spawner.status(user)
        if status.state != "running":
            return None  # starting, stopping or gone: not the culler's business
        started = status.started.timestamp() if status.started is not None else None
        if (
            settings.max_age is not None
            and started is not None
            and now - started > settings.max_age
        ):
            return "max_age"
        since = [
            t
            for t in (
                self.activity.last_activity(user),
                status.ready_at.timestamp() if status.ready_at is not None else None,
                started,
            )
            if t is not None
        ]
        if since and now - max(since) > settings.timeout:
            return "idle"
        return None  # no time known at all: cannot tell how long it idled, keep it

    def decide(self, now: float) -> list[Cull]:
        culls = []
        for user in self.spawner.running_servers():
            reason = self.reason(user, now)
            if reason is not None:
                culls.append(Cull(user, reason))
        return culls

    # -- acting ------------------------------------------------------------------------

    async def cull_round(self) -> list[Cull]:
        """One round: decide, then stop; the culls carried out."""
        planned = self.decide(time.time())
        if not planned:
            return []
        limit = asyncio.Semaphore(self.settings.concurrency)
        done = await asyncio.gather(*(self._stop(limit, cull) for cull in planned))
        culled = [cull for cull in done if cull is not None]
        log.info("culler: stopped %d of %d planned servers", len(culled), len(planned))
        return culled

    async def _stop(self, limit: asyncio.Semaphore, cull: Cull) -> Cull | None:
        async with limit:
            # Traffic may have come while waiting for a slot: decide again.
            reason = self.reason(cull.user, time.time())
            if reason is None:
                return None
            try:
                # The spawner logs the stop, with this cause: one line per server.
                await self.spawner.stop(cull.user, StopCause("culler", "culler", reason))
            except KubeError as e:
                log.warning("culler: stopping %s (%s) failed: %s", cull.user, reason, e)
                return None
        if self.observer is not None:
            try:
                self.observer(reason)
            except Exception:
                log.exception("culler: the observer failed")
        return Cull(cull.user, reason)

    # -- the task ----------------------------------------------------------------------

    async def start(self) -> None:
        await self._task.start()

    async def stop(self) -> None:
        await self._task.stop()
