"""The first byte of a new public connection: a TLS handshake, or plain HTTP by mistake.

A TLS client speaks first with a handshake record (byte 0x16). Anything else
on the TLS port is someone typing http://host:443/ (or a scanner): without this
look the TLS layer would fail the handshake and close with nothing a person can
read, or wait for a handshake that never comes. So the first byte is peeked
(never consumed) before TLS starts; plain bytes get a short 400 page saying
the port speaks HTTPS, then the connection closes. A connection that sends
nothing within `timeout` seconds is closed.

It never consumes a byte of a TLS connection and never decides anything
beyond TLS or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable

TLS_HANDSHAKE = 0x16
_BODY = b"This port speaks HTTPS: the request was sent as plain HTTP. Use an https:// URL.\n"
PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: close\r\n\r\n" % len(_BODY)
) + _BODY


# The listener's way to start a socket: with TLS (a context), or with another protocol.
ProtocolFactory = Callable[[], asyncio.Protocol]
Starter = Callable[[socket.socket, ssl.SSLContext | None, ProtocolFactory | None], None]


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
    ) -> None:
        self.context = context
        self.start = start  # the listener's: connect_accepted_socket, tracked
        self.loop = loop
        self.timeout = timeout
        self._waiting: dict[int, tuple[socket.socket, asyncio.TimerHandle]] = {}

    def take(self, connection: socket.socket) -> None:
        """Start `connection` as TLS or refuse it as plain HTTP; wait for its first byte."""
        if not self._decide(connection):
            fd = connection.fileno()
            timer = self.loop.call_later(self.timeout, self._late, fd)
            self._waiting[fd] = (connection, timer)
            self.loop.add_reader(fd, self._readable, fd)

    def close(self) -> None:
        """Drop connections still silent (the server stops)."""
        for fd in list(self._waiting):
            self._forget(fd)[0].close()

    def _readable(self, fd: int) -> None:
        waiting = self._waiting.get(fd)
        if waiting is not None:
            self._decide(waiting[0], waited=True)

    def _late(self, fd: int) -> None:
        if fd in self._waiting:
            self._forget(fd)[0].close()

    def _forget(self, fd: int) -> tuple[socket.socket, asyncio.TimerHandle]:
        connection, timer = self._waiting.pop(fd)
        timer.cancel()
        self.loop.remove_reader(fd)
        return connection, timer

    def _decide(self, connection: socket.socket, waited: bool = False) -> bool:
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
        elif first[0] == TLS_HANDSHAKE:
            self.start(connection, self.context(), None)
        else:
            self.start(connection, None, PlainHttpRefusal)
        return True
