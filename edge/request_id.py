"""Request ids: the one a trusted proxy sent, or a new one, carried upstream and into logs.

A request's id goes to the pod as X-Request-Id (HTTP and WebSocket handshakes,
both lanes), back to the browser on the response, and onto every log record
about that request. An id from the client is believed only when it came
through a trusted proxy and is well-formed (short, visible ASCII): anyone else
could forge ids to poison log searches, or smuggle bytes into the pod's logs.

New ids are a per-process random prefix plus a counter: unique across
replicas and restarts without a uuid4 (and its urandom call) per request.

No I/O here, and nothing that reads a body.
"""

from __future__ import annotations

import itertools
import secrets
from contextvars import ContextVar

HEADER = "X-Request-Id"
# Longer ids are refused: enough for a uuid or a trace id, short enough for a log line.
MAX_LENGTH = 128

# The id of the request the running task serves (aiohttp path and hub handlers);
# the fast lane works in callbacks and passes its id to log calls itself.
current_request_id: ContextVar[str | None] = ContextVar("podgate_request_id", default=None)


def well_formed(value: str | bytes) -> bool:
    """Whether a client's id may be kept: 1 to MAX_LENGTH visible ASCII characters."""
    if not value or len(value) > MAX_LENGTH:
        return False
    if isinstance(value, str):
        return value.isascii() and value.isprintable() and " " not in value
    return all(0x21 <= byte <= 0x7E for byte in value)


class RequestIds:
    """Makes the ids of one process: "<random prefix>-<counter in hex>"."""

    __slots__ = ("_counter", "_prefix")

    def __init__(self, prefix: str | None = None) -> None:
        self._prefix = (prefix or secrets.token_hex(6)) + "-"
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"

    def choose(self, offered: str | None, trusted: bool) -> str:
        """The client's id when a trusted proxy passed on a well-formed one, else a new id."""
        if offered is not None and trusted and well_formed(offered):
            return offered
        return self.new()
