"""Closing a relayed WebSocket with 1001 Going Away when podgate stops.

Both relays (edge.websocket.relay behind aiohttp, edge.fastlane.pump in the fast
lane) pass raw bytes and never decode a message. To say goodbye they must
still put a close frame between two frames, never inside one: a
`FrameCursor` follows each direction's frame headers and lengths (it never
reads a payload), so the relay always knows where the next boundary is.
`Farewell` holds both cursors of one socket: while serving it only follows
the bytes; once `leave()` is called, each direction gets a close frame at
its next boundary (unmasked toward the browser, masked toward the pod, as
RFC 6455 wants of a server and of a client), nothing more of that direction
is relayed, and the relay may end once both peers have answered with their
own close frame (or its linger time is up).

Following is always on, because a boundary cannot be found later from the
middle of a stream. It costs a length subtraction per read for large
frames and one header decode per frame for small ones.

Pure bookkeeping on bytes: no I/O, no timers, never changes a relayed byte.
"""

from __future__ import annotations

import os
import struct

GOING_AWAY = 1001
REASON = b"server shutting down"
SESSION_ENDED = b"session ended"  # the user was signed out, or is no longer allowed
# Seconds a relay waits for both peers' close frames after sending its own.
LINGER = 2.0
_CLOSE_OPCODE = 0x8


def close_frame(code: int = GOING_AWAY, reason: bytes = REASON, *, masked: bool) -> bytes:
    """A complete close frame; `masked` for the pod (we are its client), not for the browser."""
    payload = struct.pack("!H", code) + reason[:123]
    if not masked:
        return bytes((0x80 | _CLOSE_OPCODE, len(payload))) + payload
    key = os.urandom(4)
    hidden = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    return bytes((0x80 | _CLOSE_OPCODE, 0x80 | len(payload))) + key + hidden


class FrameCursor:
    """Where one direction's byte stream stands relative to its frame boundaries."""

    __slots__ = ("closed", "left", "partial")

    def __init__(self) -> None:
        self.left = 0  # payload bytes of the current frame still to come
        self.partial = b""  # the start of a frame header split across reads
        self.closed = False  # a close frame has been seen in this direction

    @property
    def at_boundary(self) -> bool:
        return not self.left and not self.partial

    def follow(self, data: bytes, *, stop_at_boundary: bool = False) -> int:
        """Follow `data`; how many of its bytes were followed.

        All of them, or with `stop_at_boundary` only up to the first frame
        boundary (0 when the stream already stands at one).
        """
        size = len(data)
        left = self.left
        if size <= left and not stop_at_boundary:
            self.left = left - size  # the common case for large frames
            return size
        position = 0
        while True:
            left = self.left
            if left:
                if size - position < left:
                    self.left = left - (size - position)
                    return size
                position += left
                self.left = 0
                if stop_at_boundary or position == size:
                    return position
            elif stop_at_boundary and not self.partial:
                return position
            if position == size:
                return size
            position = self._header(data, position)
            if position < 0:
                return size  # the header continues in the next read

    def _header(self, data: bytes, position: int) -> int:
        """Decode the frame header at data[position:]; where its payload starts, or -1."""
        partial = self.partial
        head = partial + data[position : position + 14] if partial else data[position:]
        if len(head) < 2:
            self.partial = head
            return -1
        second = head[1]
        length = second & 0x7F
        size = 2 + (4 if second & 0x80 else 0)
        if length == 126:
            size += 2
        elif length == 127:
            size += 8
        if len(head) < size:
            self.partial = head[:size]
            return -1
        if length == 126:
            length = int.from_bytes(head[2:4], "big")
        elif length == 127:
            length = int.from_bytes(head[2:10], "big")
        if head[0] & 0x0F == _CLOSE_OPCODE:
            self.closed = True
        self.partial = b""
        self.left = length
        return position + size - len(partial)


class Farewell:
    """Both directions of one relayed WebSocket, and its goodbye once the server stops."""

    __slots__ = ("from_browser", "from_pod", "leaving", "reason", "told_browser", "told_pod")

    def __init__(self) -> None:
        self.from_browser = FrameCursor()
        self.from_pod = FrameCursor()
        self.leaving = False
        self.reason = REASON
        self.told_pod = False
        self.told_browser = False

    def leave(self, reason: bytes = REASON) -> tuple[bytes, bytes]:
        """Start the goodbye: the close frames to write now (to the pod, to the browser).

        A direction in the middle of a frame gets b"" here and its close frame
        from browser_bytes/pod_bytes once that frame ends.
        """
        self.leaving = True
        self.reason = reason
        to_pod = to_browser = b""
        if not self.told_pod and self.from_browser.at_boundary:
            self.told_pod = True
            to_pod = close_frame(reason=reason, masked=True)
        if not self.told_browser and self.from_pod.at_boundary:
            self.told_browser = True
            to_browser = close_frame(reason=reason, masked=False)
        return to_pod, to_browser

    @property
    def over(self) -> bool:
        """Both close frames sent and both peers' close frames seen: the relay may end."""
        return (
            self.told_pod
            and self.told_browser
            and self.from_browser.closed
            and self.from_pod.closed
        )

    def browser_bytes(self, data: bytes) -> bytes:
        """What of the browser's `data` goes on to the pod."""
        if not self.leaving:
            self.from_browser.follow(data)
            return data
        relayed, self.told_pod = _toward(
            self.from_browser, data, self.told_pod, self.reason, masked=True
        )
        return relayed

    def pod_bytes(self, data: bytes) -> bytes:
        """What of the pod's `data` goes on to the browser."""
        if not self.leaving:
            self.from_pod.follow(data)
            return data
        relayed, self.told_browser = _toward(
            self.from_pod, data, self.told_browser, self.reason, masked=False
        )
        return relayed


def _toward(
    cursor: FrameCursor, data: bytes, told: bool, reason: bytes, *, masked: bool
) -> tuple[bytes, bool]:
    """While leaving: the rest of the current frame, then our close frame, then nothing."""
    if told:
        cursor.follow(data)  # only to see the peer's own close frame go by
        return b"", True
    end = cursor.follow(data, stop_at_boundary=True)
    if not cursor.at_boundary:
        return data, False
    cursor.follow(data[end:])
    return data[:end] + close_frame(reason=reason, masked=masked), True
