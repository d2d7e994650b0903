"""Watch streams: chunked JSON lines of ADDED/MODIFIED/DELETED/BOOKMARK/ERROR.

`WatchHub` fans store changes out to every open stream and can drop them
all at once (a fault). `stream_watch` serves one watch request: replay from
a resourceVersion (or synthetic ADDED for the current state), then live
changes, bookmarks when asked for, an ERROR 410 for an expired version, and
an end after timeoutSeconds. Selectors are applied to both the old and new
object, so an object that starts or stops matching arrives as ADDED or
DELETED. Never changes the store.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kubesim.status import ApiError, expired
from kubesim.store import Change, Store

log = logging.getLogger(__name__)

Predicate = Callable[[dict[str, Any]], bool]

# How often an idle stream checks that its client is still connected.
_IDLE_CHECK_SECONDS = 1.0
# Initial events are written in batches so a 10,000-object watch is quick.
_BATCH = 500


@dataclass(eq=False)
class _Subscription:
    key: str
    queue: asyncio.Queue[Change | None] = field(default_factory=asyncio.Queue)


class WatchHub:
    """Open watch streams and the store listener that feeds them."""

    def __init__(self, store: Store, bookmark_interval: float = 5.0) -> None:
        self._store = store
        self.bookmark_interval = bookmark_interval
        self._subscriptions: set[_Subscription] = set()
        self._unlisten: Callable[[], None] | None = None

    def start(self) -> None:
        self._unlisten = self._store.add_listener(self._dispatch)

    def stop(self) -> None:
        if self._unlisten:
            self._unlisten()
            self._unlisten = None
        self.drop_all()

    def _dispatch(self, change: Change) -> None:
        for sub in self._subscriptions:
            if sub.key == change.key:
                sub.queue.put_nowait(change)

    def subscribe(self, key: str) -> _Subscription:
        sub = _Subscription(key)
        self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: _Subscription) -> None:
        self._subscriptions.discard(sub)

    def drop_all(self) -> int:
        """Close every open stream now (a None wakes and ends each one)."""
        for sub in self._subscriptions:
            sub.queue.put_nowait(None)
        return len(self._subscriptions)

    @property
    def open_streams(self) -> int:
        return len(self._subscriptions)


@dataclass(frozen=True)
class WatchRequest:
    key: str
    kind: str
    api_version: str
    namespace: str | None  # None: all namespaces
    predicate: Predicate
    resource_version: str
    timeout_seconds: float | None
    bookmarks: bool
    force_expired: bool  # fault injection: answer any resume with 410


def _line(event_type: str, obj_json: bytes) -> bytes:
    return b'{"type":"' + event_type.encode() + b'","object":' + obj_json + b"}\n"


def event_line(change: Change, request: WatchRequest) -> bytes | None:
    """The line a stream sends for a change, or None if it does not concern it."""
    if request.namespace is not None and change.namespace != request.namespace:
        return None
    new_match = request.predicate(change.entry.obj)
    if change.type == "MODIFIED" and change.old is not None:
        old_match = request.predicate(change.old.obj)
        if old_match and not new_match:
            return _line("DELETED", change.entry.full_json())
        if new_match and not old_match:
            return _line("ADDED", change.entry.full_json())
    return _line(change.type, change.entry.full_json()) if new_match else None


def _bookmark(request: WatchRequest, rv: int) -> bytes:
    obj = {"kind": request.kind, "apiVersion": request.api_version,
           "metadata": {"resourceVersion": str(rv)}}  # fmt: skip
    return _line("BOOKMARK", json.dumps(obj, separators=(",", ":")).encode())


def _expired_line(rv: int, oldest: int) -> bytes:
    status = expired(f"too old resource version: {rv} ({oldest})").status()
    return _line("ERROR", json.dumps(status, separators=(",", ":")).encode())


def parse_resource_version(text: str) -> int | None:
    """None for "" or "0" (start from the current state), else the version."""
    if text in ("", "0"):
        return None
    if not text.isdigit():
        # The real server's answer, a 500 without a reason, quoting Go's parser.
        raise ApiError(
            500, "",
            f'resourceVersion: Invalid value: "{text}": strconv.ParseUint: parsing "{text}": '
            "invalid syntax",
        )  # fmt: skip
    return int(text)


async def stream_watch(
    http_request: web.Request, store: Store, hub: WatchHub, request: WatchRequest
) -> web.StreamResponse:
    since = parse_resource_version(request.resource_version)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(http_request)
    # Snapshot and subscribe in one synchronous step: no change can fall between.
    sub = hub.subscribe(request.key)
    try:
        if since is not None and (since < store.compacted_rv or request.force_expired):
            await response.write(_expired_line(since, store.compacted_rv + 1))
            return response
        if since is None:
            initial = [
                _line("ADDED", e.full_json())
                for e in store.entries(request.key, request.namespace)
                if request.predicate(e.obj)
            ]
        else:
            initial = [
                line
                for change in store.changes_since(since, request.key)
                if (line := event_line(change, request)) is not None
            ]
        for start in range(0, len(initial), _BATCH):
            await response.write(b"".join(initial[start : start + _BATCH]))
        await _stream_live(http_request, response, store, hub, sub, request)
    except ConnectionResetError:
        log.debug("watch client went away")
    finally:
        hub.unsubscribe(sub)
    return response


async def _stream_live(
    http_request: web.Request,
    response: web.StreamResponse,
    store: Store,
    hub: WatchHub,
    sub: _Subscription,
    request: WatchRequest,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + request.timeout_seconds if request.timeout_seconds else None
    bookmark_interval = hub.bookmark_interval
    next_bookmark = loop.time() + bookmark_interval
    while True:
        now = loop.time()
        wait = _IDLE_CHECK_SECONDS
        if deadline is not None:
            wait = min(wait, deadline - now)
        if request.bookmarks:
            wait = min(wait, next_bookmark - now)
        try:
            change = await asyncio.wait_for(sub.queue.get(), timeout=max(wait, 0))
        except TimeoutError:
            now = loop.time()
            if deadline is not None and now >= deadline:
                if request.bookmarks:
                    await response.write(_bookmark(request, store.resource_version))
                return
            if request.bookmarks and now >= next_bookmark:
                await response.write(_bookmark(request, store.resource_version))
                next_bookmark = now + bookmark_interval
            transport = http_request.transport
            if transport is None or transport.is_closing():
                return
            continue
        if change is None:
            return  # dropped on purpose (fault injection or shutdown)
        lines = [change]
        while not sub.queue.empty() and len(lines) < _BATCH:
            lines.append(sub.queue.get_nowait())
        payload = []
        for item in lines:
            if item is None:
                await response.write(b"".join(payload))
                return
            if (line := event_line(item, request)) is not None:
                payload.append(line)
        if payload:
            await response.write(b"".join(payload))
