"""Informer: a local cache of one kind of object, kept current by list-then-watch.

The reflector discipline: list, apply the list as a diff against the cache,
watch from the list's resourceVersion with bookmarks, resume from the last
version seen when a watch ends, relist after any error (410 Expired at once,
others after an exponential, jittered, capped back-off) and on a timer, so a
silently stalled stream cannot starve the cache. Listeners hear every change
applied, including the ones a relist finds by diffing.

It talks only to control.kube.Kube, runs one named task, keeps nothing but
the cache, and never lets a listener's exception or an API failure end it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from control.errors import Expired, KubeError, KubeThrottled
from control.kube import Kube, Object, WatchEvent
from control.tasks import BackgroundTask

log = logging.getLogger(__name__)

# fn(event_type, obj, old): ADDED (old None), MODIFIED, DELETED (obj = last known object).
Listener = Callable[[str, Object, Object | None], None]

WATCH_TIMEOUT = 10  # seconds per watch request, as KubeSpawner's reflector
BACKOFF_FIRST = 0.5  # seconds before the first retry after an error


def _name(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _version(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _uid(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


class Informer:
    """The objects of `resource` in `namespace` matching the selectors, keyed by name."""

    def __init__(
        self,
        kube: Kube,
        resource: str,
        namespace: str,
        *,
        label_selector: str = "",
        field_selector: str = "",
        restart_seconds: float = 30.0,
        backoff_max: float = 30.0,
        name: str = "pods",
        max_cached: int | None = None,
    ) -> None:
        """`max_cached` bounds the cache (oldest first out) for kinds nobody deletes
        promptly, such as Events: a real API server keeps them for an hour."""
        self._max_cached = max_cached
        self.cache: dict[str, Object] = {}
        self.synced = asyncio.Event()  # set once the first list is applied
        self.restarts = 0  # relists after the first one (errors, 410s and the restart timer)
        self.last_event_time = 0.0  # time.time() of the last watch event or bookmark
        self._kube = kube
        self._resource = resource
        self._namespace = namespace
        self._label_selector = label_selector
        self._field_selector = field_selector
        self._restart_seconds = restart_seconds
        self._backoff_max = backoff_max
        self._name = name
        self._listeners: list[Listener] = []
        self._version = ""  # the last resourceVersion seen; "" means list first
        self._task = BackgroundTask(f"informer-{name}", self._run)
        self._trouble = ""  # the failure last logged; "" while healthy
        self._failures = 0  # errors since the last watch that ended cleanly

    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    async def start(self) -> None:
        await self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    # -- the loop ------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                if not self._version:
                    await self._relist()
                await self._watch_until_restart()
                self._version = ""  # the restart timer: relist to catch anything a stall hid
            except asyncio.CancelledError:
                raise
            except Exception as e:  # supervised: log once, back off, start over with a list
                self._failures += 1
                self._version = ""
                self._report(e)
                await asyncio.sleep(self._delay(e, self._failures))

    async def _relist(self) -> None:
        found = await self._kube.list(
            self._resource,
            self._namespace,
            label_selector=self._label_selector,
            field_selector=self._field_selector,
        )
        if self.synced.is_set():
            self.restarts += 1
        self._apply_list(found.items)
        self._version = found.resource_version
        self.synced.set()
        # A good list means the API answers: the next trouble backs off from the start
        # (and a 410 right after it relists at once) rather than from the last streak.
        self._failures = 0
        self._recovered()

    async def _watch_until_restart(self) -> None:
        """Watch (resuming after each clean end) until the restart timer runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._restart_seconds
        while (left := deadline - loop.time()) > 0:
            seconds = max(1, min(WATCH_TIMEOUT, round(left)))
            # The server ends the watch after `seconds`; the guard covers one that goes silent.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds + 5):
                    await self._follow(seconds)
            self._failures = 0  # a watch that ends cleanly means the API is healthy again

    async def _follow(self, seconds: int) -> None:
        events = self._kube.watch(
            self._resource,
            self._namespace,
            resource_version=self._version,
            label_selector=self._label_selector,
            field_selector=self._field_selector,
            timeout_seconds=seconds,
        )
        try:
            async for event in events:
                self.last_event_time = time.time()
                self._apply_event(event)
                if version := _version(event.object):
                    self._version = version
        finally:
            # Close the stream now (releasing its connection), not whenever it is collected.
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    def _delay(self, error: Exception, failures: int) -> float:
        if isinstance(error, Expired) and failures == 1:
            return 0.0  # a routine 410: relist at once
        delay = min(self._backoff_max, BACKOFF_FIRST * 2 ** (failures - 1))
        delay *= random.uniform(0.5, 1.0)  # keep replicas from retrying in step
        if isinstance(error, KubeThrottled):
            delay = max(delay, error.retry_after)
        return delay

    # -- logging once per state change ---------------------------------------------

    def _report(self, error: Exception) -> None:
        trouble = f"{type(error).__name__}: {error}"
        if trouble == self._trouble:
            return
        self._trouble = trouble
        if isinstance(error, Expired):
            log.info("%s informer: %s; listing again", self._name, error)
        elif isinstance(error, KubeError):
            log.warning("%s informer: %s; retrying with back-off", self._name, error)
        else:
            log.exception("%s informer failed unexpectedly; retrying with back-off", self._name)

    def _recovered(self) -> None:
        if self._trouble:
            log.info("%s informer: watching again after %s", self._name, self._trouble)
            self._trouble = ""

    # -- applying changes to the cache -----------------------------------------------

    def _apply_event(self, event: WatchEvent) -> None:
        obj = event.object
        name = _name(obj)
        if event.type == "BOOKMARK" or not name:
            return
        if event.type == "DELETED":
            old = self.cache.pop(name, None)
            if old is not None:
                self._notify("DELETED", obj, old)
            return
        self._put(name, obj)

    def _apply_list(self, items: list[Object]) -> None:
        """Make the cache equal to a fresh list, telling listeners what changed."""
        fresh = {_name(obj): obj for obj in items if _name(obj)}
        for name in [name for name in self.cache if name not in fresh]:
            old = self.cache.pop(name)
            self._notify("DELETED", old, old)
        for name, obj in fresh.items():
            self._put(name, obj)

    def _put(self, name: str, obj: Object) -> None:
        old = self.cache.get(name)
        if old is not None and _version(old) == _version(obj):
            return  # seen already (a relist or a replayed event)
        if old is not None and _uid(old) != _uid(obj):
            # Deleted and made again under the same name while we were not looking.
            del self.cache[name]
            self._notify("DELETED", old, old)
            old = None
        self.cache[name] = obj
        if self._max_cached is not None and len(self.cache) > self._max_cached:
            # Bounded: the oldest entry goes (listeners already heard of it).
            del self.cache[next(iter(self.cache))]
        self._notify("ADDED" if old is None else "MODIFIED", obj, old)

    def _notify(self, kind: str, obj: Object, old: Object | None) -> None:
        for listener in self._listeners:
            try:
                listener(kind, obj, old)
            except Exception:
                log.exception(
                    "%s informer: a listener failed on %s %s", self._name, kind, _name(obj)
                )
