"""What each user pod uses right now (CPU cores, memory bytes), from metrics.k8s.io, cached.

One list of "metrics.k8s.io/v1beta1/pods" in the namespace serves every row
of every admin page for `max_age` seconds; concurrent pages share the one
call under way. A cluster without the metrics API (404), or any API fault,
makes the usage unknown (the panel shows "—") until the next try: it never
fails a page, and a page never waits longer than `timeout` for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from control.admin.quantities import parse_quantity
from control.errors import KubeError
from control.kube import Kube, Object

log = logging.getLogger(__name__)

METRICS_RESOURCE = "metrics.k8s.io/v1beta1/pods"


@dataclass(frozen=True)
class Usage:
    cpu: float | None  # cores
    memory: float | None  # bytes


def _pod_usage(item: Object) -> tuple[str, Usage] | None:
    name = (item.get("metadata") or {}).get("name")
    if not isinstance(name, str):
        return None
    cpu: float | None = None
    memory: float | None = None
    for container in item.get("containers") or ():
        usage = container.get("usage") or {}
        if (c := parse_quantity(usage.get("cpu"))) is not None:
            cpu = (cpu or 0.0) + c
        if (m := parse_quantity(usage.get("memory"))) is not None:
            memory = (memory or 0.0) + m
    return name, Usage(cpu, memory)


class PodUsageCache:
    """Usage by pod name, refreshed at most every `max_age` seconds; None while unknown."""

    def __init__(self, *, max_age: float = 5.0, timeout: float = 2.0) -> None:
        self.max_age = max_age
        self.timeout = timeout
        self._by_pod: dict[str, Usage] | None = None
        self._fetched = float("-inf")  # time.monotonic() of the last try, good or bad
        self._fetch: asyncio.Task[dict[str, Usage] | None] | None = None
        self._trouble = ""  # the failure last logged, so a missing API logs once

    async def current(self, kube: Kube, namespace: str) -> dict[str, Usage] | None:
        """The usage of every pod of `namespace` the metrics API knows, or None."""
        if time.monotonic() - self._fetched < self.max_age:
            return self._by_pod
        if self._fetch is None:
            self._fetch = asyncio.create_task(self._list(kube, namespace), name="admin-pod-usage")
            self._fetch.add_done_callback(self._settled)
        try:
            # Shielded: one page giving up must not cancel the fetch the others wait for.
            return await asyncio.wait_for(asyncio.shield(self._fetch), self.timeout)
        except TimeoutError:
            return self._by_pod  # the last known figures; the fetch goes on

    async def close(self) -> None:
        """Cancel a fetch under way (the hub app's cleanup)."""
        task, self._fetch = self._fetch, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _settled(self, task: asyncio.Task[dict[str, Usage] | None]) -> None:
        self._fetch = None
        self._fetched = time.monotonic()
        if not task.cancelled() and task.exception() is None:
            self._by_pod = task.result()

    async def _list(self, kube: Kube, namespace: str) -> dict[str, Usage] | None:
        try:
            listed = await kube.list(METRICS_RESOURCE, namespace)
        except KubeError as e:
            trouble = f"{type(e).__name__}: {e}"
            if trouble != self._trouble:
                log.info("admin: no pod usage from metrics.k8s.io (%s)", trouble)
                self._trouble = trouble
            return None
        self._trouble = ""
        return dict(found for item in listed.items if (found := _pod_usage(item)) is not None)
