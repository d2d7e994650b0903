"""Not tests: what the spawner tests build on kubesim (informers, progress, routes, a Spawner)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from control.informer import Informer
from control.kube import Kube
from control.manifests import POD_SELECTOR
from control.progress import ProgressEvent, SpawnProgress
from control.route_sync import PodRoutes
from control.settings import SpawnerSettings
from control.spawner import Spawner
from routes import RouteTable

NAMESPACE = "podgate"


def echo_settings(**changes: Any) -> SpawnerSettings:
    """Shared-process echo pods: fast, serve HTTP on the pod's own address."""
    values: dict[str, Any] = {
        "namespace": NAMESPACE,
        "image": "kubesim/echo",
        "jupyter_args": False,
        "readiness_path": None,
        "start_timeout": 10.0,
        "stop_grace_seconds": 1,
    }
    values.update(changes)
    return SpawnerSettings(**values)


@dataclass
class Stack:
    spawner: Spawner
    table: RouteTable
    progress: SpawnProgress
    pods: Informer
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)

    async def events_of(self, user: str) -> list[ProgressEvent]:
        """Follow the user's progress to its end (bounded)."""
        async with asyncio.timeout(15):
            return [event async for event in self.progress.follow(user)]


@asynccontextmanager
async def spawner_stack(kube: Kube, settings: SpawnerSettings) -> AsyncIterator[Stack]:
    """One replica's control plane: pod + event informers, routes, progress, Spawner."""
    table = RouteTable()
    progress = SpawnProgress()
    pods = Informer(kube, "pods", NAMESPACE, label_selector=POD_SELECTOR)
    events = Informer(
        kube, "events", NAMESPACE, field_selector="involvedObject.kind=Pod", name="events"
    )
    pods.add_listener(PodRoutes(table, settings.port))
    outcomes: list[tuple[str, str, str]] = []
    spawner = Spawner(
        kube,
        settings,
        pods,
        events,
        progress,
        observer=lambda outcome, user, seconds, reason: outcomes.append((outcome, user, reason)),
    )
    await pods.start()
    await events.start()
    try:
        async with asyncio.timeout(5):
            await pods.synced.wait()
            await events.synced.wait()
        yield Stack(spawner, table, progress, pods, outcomes)
    finally:
        await spawner.close()
        await events.stop()
        await pods.stop()


async def until(check: Callable[[], bool | Awaitable[bool]], seconds: float = 10.0) -> None:
    """Wait for `check` to hold, looking every 50 ms, failing after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        outcome = check()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
