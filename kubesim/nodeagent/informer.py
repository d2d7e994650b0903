"""List+watch of one resource into a local cache, calling back on every change.

The reflector pattern of client-go, small: list, then watch from the list's
resourceVersion (bookmarks keep it fresh); 410 Gone or a broken stream
means list again, and the new list is diffed against the cache so the
callback hears ADDED/MODIFIED/DELETED exactly as if nothing had been
missed. Callbacks are synchronous and must not raise; the informer never
writes to the API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from kubesim.nodeagent.client import ApiClient, ApiError, Obj, Query

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
Callback = Callable[[str, Obj], None]
RETRY_SECONDS = 1.0


def key_of(obj: Obj) -> Key:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


class Informer:
    """The objects at `path` (a collection, e.g. /api/v1/pods) matching the selector."""

    def __init__(
        self, client: ApiClient, path: str, *, field_selector: str = "", label_selector: str = ""
    ) -> None:
        self._client = client
        self.path = path
        self._query: Query = {}
        if field_selector:
            self._query["fieldSelector"] = field_selector
        if label_selector:
            self._query["labelSelector"] = label_selector
        self.cache: dict[Key, Obj] = {}
        self.synced = asyncio.Event()
        self.relists = 0  # how often a 410 or a broken stream made it list again
        self._callbacks: list[Callback] = []
        self._version = ""

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    async def list_once(self) -> None:
        """One list into the cache; raises ApiError (the first one tells the agent's caller)."""
        page = await self._client.request("GET", self.path, query=dict(self._query))
        fresh = {key_of(item): item for item in page.get("items") or []}
        self._version = str((page.get("metadata") or {}).get("resourceVersion") or "")
        for key in [k for k in self.cache if k not in fresh]:
            self._emit("DELETED", self.cache.pop(key))
        for key, item in fresh.items():
            before = self.cache.get(key)
            self.cache[key] = item
            if before is None:
                self._emit("ADDED", item)
            elif _version(before) != _version(item):
                self._emit("MODIFIED", item)
        self.synced.set()

    async def run(self) -> None:
        """Watch forever (the initial list_once is the caller's); relist when needed."""
        while True:
            try:
                await self._watch()
                continue  # the server ended the watch: resume from the last version
            except ApiError as e:
                if e.status != 410:
                    log.warning("watch of %s failed (%s): listing again", self.path, e)
                    await asyncio.sleep(RETRY_SECONDS)
            while True:
                try:
                    await self.list_once()
                    self.relists += 1
                    break
                except ApiError as e:
                    log.warning("list of %s failed (%s): retrying", self.path, e)
                    await asyncio.sleep(RETRY_SECONDS)

    async def _watch(self) -> None:
        query = {**self._query, "resourceVersion": self._version}
        async for event in self._client.watch(self.path, query):
            kind, obj = str(event.get("type")), event.get("object") or {}
            version = _version(obj)
            if version:
                self._version = version
            if kind == "BOOKMARK":
                continue
            key = key_of(obj)
            if kind == "DELETED":
                if self.cache.pop(key, None) is not None:
                    self._emit("DELETED", obj)
                continue
            self.cache[key] = obj
            self._emit(kind, obj)

    def _emit(self, kind: str, obj: Obj) -> None:
        for callback in list(self._callbacks):
            try:
                callback(kind, obj)
            except Exception:  # one subscriber's bug must not stop the watch
                log.exception("informer callback for %s failed", self.path)


def _version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
