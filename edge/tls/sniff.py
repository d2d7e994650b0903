"""The first byte of a new public connection: a TLS handshake, or plain HTTP by mistake.

A TLS client speaks first with a handshake record (byte 0x16). Anything else
on the TLS port is someone typing http://host:443/ (or a scanner): without this
look the TLS layer would fail the handshake and close with nothing a person can
read, or wait for a handshake that never comes. So the first byte is peeked
(never consumed) before TLS starts; plain bytes get a short 400 page saying
the port speaks HTTPS, then the connection closes. A connection that sends
nothing within `timeout` seconds is closed. Like half-sent request heads
(edge.fastlane.slow_heads), connections still silent or still in their
handshake are counted per client address: past `per_address` (generous: a
classroom behind one NAT address opens many at once) a new one is closed at
once, so one address cannot hold the listener with slow handshakes (trusted
proxies are exempt).

It never consumes a byte of a TLS connection and never decides anything
beyond TLS or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable

log = logging.getLogger(__name__)

TLS_HANDSHAKE = 0x16
_BODY = b"This port speaks HTTPS: the request was sent as plain HTTP. Use an https:// URL.\n"
PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: close\r\n\r\n" % len(_BODY)
) + _BODY


# The listener's way to start a socket: with TLS (a context), or with another protocol;
# the last argument is called once the start is over (the handshake done or failed).
ProtocolFactory = Callable[[], asyncio.Protocol]
Starter = Callable[
    [socket.socket, ssl.SSLContext | None, ProtocolFactory | None, Callable[[], None] | None],
    None,
]


class PlainHttpRefusal(asyncio.Protocol):
    """Reads what the plain client sent (so the close is not a reset), answers 400, closes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(PLAIN_HTTP_ANSWER)
            transport.close()


class TlsEntry:
    """Sorts accepted sockets into TLS (started with the context in force) and plain (400)."""

    def __init__(
        self,
        context: Callable[[], ssl.SSLContext],
        start: Starter,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
        per_address: int,
        trusted: Callable[[str], bool],
    ) -> None:
        self.context = context
        self.start = start  # the listener's: connect_accepted_socket, tracked
        self.loop = loop
        self.timeout = timeout
        self.per_address = per_address
        self.trusted = trusted
        self._waiting: dict[int, tuple[socket.socket, asyncio.TimerHandle, str]] = {}
        self._pending: dict[str, int] = {}  # address -> connections silent or in handshake

    def take(self, connection: socket.socket) -> None:
        """Start `connection` as TLS or refuse it as plain HTTP; wait for its first byte."""
        try:
            peer = str(connection.getpeername()[0])
        except (OSError, IndexError):
            peer = ""
        if peer and not self.trusted(peer):
            if self._pending.get(peer, 0) >= self.per_address:
                log.info(
                    "%d TLS connections already silent or in their handshake from %s: closed",
                    self.per_address,
                    peer,
                )
                connection.close()
                return
            self._pending[peer] = self._pending.get(peer, 0) + 1
        else:
            peer = ""  # not counted
        if not self._decide(connection, peer):
            fd = connection.fileno()
            timer = self.loop.call_later(self.timeout, self._late, fd)
            self._waiting[fd] = (connection, timer, peer)
            self.loop.add_reader(fd, self._readable, fd)

    def close(self) -> None:
        """Drop connections still silent (the server stops)."""
        for fd in list(self._waiting):
            connection, peer = self._forget(fd)
            connection.close()
            self._release(peer)

    def _readable(self, fd: int) -> None:
        waiting = self._waiting.get(fd)
        if waiting is not None:
            self._decide(waiting[0], waiting[2], waited=True)

    def _late(self, fd: int) -> None:
        if fd in self._waiting:
            connection, peer = self._forget(fd)
            connection.close()
            self._release(peer)

    def _forget(self, fd: int) -> tuple[socket.socket, str]:
        connection, timer, peer = self._waiting.pop(fd)
        timer.cancel()
        self.loop.remove_reader(fd)
        return connection, peer

    def _release(self, peer: str) -> None:
        if peer:
            left = self._pending.get(peer, 0) - 1
            if left > 0:
                self._pending[peer] = left
            else:
                self._pending.pop(peer, None)

    def _decide(self, connection: socket.socket, peer: str, waited: bool = False) -> bool:
        """Whether `connection` was started or closed; False: nothing arrived yet."""
        try:
            first = connection.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            first = b""
        if waited:
            # Out of the waiting set first: the loop may not watch a socket it hands on.
            fd = connection.fileno()
            if fd in self._waiting:
                self._forget(fd)
        if not first:
            with contextlib.suppress(OSError):
                connection.close()
            self._release(peer)
        elif first[0] == TLS_HANDSHAKE:
            # Counted until the handshake is over, whichever way it ends.
            self.start(connection, self.context(), None, lambda: self._release(peer))
        else:
            self.start(connection, None, PlainHttpRefusal, None)
            self._release(peer)
        return True
