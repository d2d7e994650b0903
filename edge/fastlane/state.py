"""The state one browser connection of the fast lane keeps, and the steps all share.

`ConnectionState` holds every field of a connection (in __slots__: no dict
per connection) and the two helpers every step uses (pausing the browser's
reads for a reason). The steps of serving a request are mixins on it, one
file each, joined in edge.fastlane.protocol.BrowserConnection:

- edge.fastlane.request_head: reading a request head, and starting it;
- edge.fastlane.request_body: getting a pod connection and relaying the body;
- edge.fastlane.response_relay: relaying the pod's response, and its failures;
- edge.fastlane.websocket: upgrades, until the pump takes the sockets over;
- edge.fastlane.handover: handing the connection over to aiohttp.

A step calls another's method through self, resolved once per class by
Python's method cache: the split costs the hot path nothing.
"""

from __future__ import annotations

import asyncio

from edge.fastlane.head import RequestHead
from edge.fastlane.lane import Lane
from edge.upstream.pool import Address, PodConnection
from edge.upstream.response import ChunkedFraming, Framing
from routes import Route

# Bytes a browser may send ahead (pipelined requests, body not yet sendable)
# before its socket stops being read.
BUFFER_LIMIT = 2**16
CLIENT_CLOSED = 499
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE"))

# Why reading from the browser is paused (a bit each).
PAUSED_BUFFER = 1
PAUSED_POD_FULL = 2


class ConnectionState(asyncio.Protocol):
    """The fields of one browser connection served by the fast lane."""

    __slots__ = (
        "body_left",
        "buffer",
        "chunks",
        "close_after",
        "closed",
        "connecting",
        "counted",
        "forwarded",
        "forwarded_host",
        "framing",
        "head_sent",
        "head_timer",
        "idle_since",
        "kind",
        "lane",
        "paused",
        "peer_xff",
        "pod",
        "pod_head",
        "pod_keep",
        "pod_reused",
        "queued_for",
        "request",
        "request_id",
        "reserved_for",
        "resp_buf",
        "resp_left",
        "retried",
        "route",
        "started",
        "status",
        "timer",
        "transport",
        "trusted",
        "websocket",
        "write_full",
    )

    def __init__(self, lane: Lane) -> None:
        self.lane = lane
        self.transport: asyncio.Transport | None = None
        self.buffer = b""  # browser bytes not yet consumed (rest of a body, pipelined requests)
        self.paused = 0
        self.write_full = False
        self.closed = False
        self.trusted = False
        self.peer_xff = b""
        self.forwarded_host = ""  # the Host the cached X-Forwarded-* lines were made for
        self.forwarded = b""
        self.idle_since = 0.0
        self.timer: asyncio.TimerHandle | None = None
        # Set while a head is under way that did not come in one read (slow path only).
        self.head_timer: asyncio.TimerHandle | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.queued_for: Address | None = None  # waiting in the pool's queue for this target
        self.reserved_for: Address | None = None  # holding one of the pool's opening slots
        self._reset()

    def _reset(self) -> None:
        self.request: RequestHead | None = None
        self.request_id = ""
        self.route: Route | None = None
        self.kind = "none"
        self.started = 0.0
        self.body_left = 0
        self.pod: PodConnection | None = None
        self.pod_head = b""
        self.pod_reused = False
        self.pod_keep = False
        self.retried = False
        self.resp_buf = b""
        self.head_sent = False
        self.status = 0
        self.framing = Framing.NONE
        self.resp_left = 0
        self.chunks: ChunkedFraming | None = None
        self.counted = 0
        self.close_after = False
        self.websocket = False

    def _pause(self, reason: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= reason

    def _unpause(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()
