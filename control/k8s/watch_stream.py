"""Reading a watch answer: a chunked stream of JSON lines, one WatchEvent per line.

It owns the line framing and the meaning of ERROR events (410 -> Expired,
anything else -> KubeUnavailable). It never opens or closes connections and
never resumes: the caller holds the response and decides what comes next.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp

from control.errors import Expired, KubeUnavailable
from control.k8s.translate import error_for_answer
from control.kube import WatchEvent

EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})


def decode_event(line: bytes) -> WatchEvent:
    """One watch line as a WatchEvent; raises for ERROR events and malformed lines."""
    try:
        event = json.loads(line)
        kind, obj = event["type"], event["object"]
    except (ValueError, KeyError, TypeError) as e:
        raise KubeUnavailable(0, "BadWatchEvent", f"undecodable watch line: {line[:200]!r}") from e
    if kind == "ERROR":
        code = obj.get("code") if isinstance(obj, dict) else None
        error = error_for_answer(code if isinstance(code, int) else 500, json.dumps(obj))
        if isinstance(error, Expired):
            raise error
        # Any other ERROR means this stream is useless; the caller starts over.
        raise KubeUnavailable(error.status, error.reason, error.message)
    if kind not in EVENT_TYPES or not isinstance(obj, dict):
        raise KubeUnavailable(0, "BadWatchEvent", f"unknown watch event type {kind!r}")
    return WatchEvent(kind, obj)


async def read_watch_events(stream: aiohttp.StreamReader) -> AsyncIterator[WatchEvent]:
    """Every event in the stream until it ends; a torn last line is a broken stream."""
    pending = b""
    async for chunk in stream.iter_any():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield decode_event(line)
    if pending.strip():
        raise KubeUnavailable(0, "BrokenWatch", "the watch stream ended inside an event")
