"""The public listening socket, accepted from in batches.

libuv (under uvloop) accepts one connection per event-loop turn; a proxy busy
with hundreds of connections takes milliseconds per turn, so a burst of new
browsers waited seconds in the accept queue (wrk timeouts at 1,000
connections). This listener accepts every pending connection, up to a bound,
each time the socket is readable, and hands each to the event loop's own
transport through loop.connect_accepted_socket.

With TLS (edge.tls), each accepted socket goes to edge.tls.sniff first, which
starts it with the certificate context in force when its first byte says TLS
(so a reloaded certificate serves new connections while open ones keep
theirs), or answers plain HTTP with a 400.

It never reads from a connection and never decides anything about one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable

from edge.tls.sniff import TlsEntry

log = logging.getLogger(__name__)

# Connections accepted per readiness callback: all of a burst, bounded.
ACCEPT_BATCH = 1024
# Seconds a TLS client has for its first byte, and then for the whole handshake.
TLS_FIRST_BYTE_TIMEOUT = 10.0
TLS_HANDSHAKE_TIMEOUT = 10.0


class Listener:
    """Accepts connections on one socket and starts `protocol_factory` on each."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.sock = sock
        self.protocol_factory = protocol_factory
        self.loop = loop
        self._starting: set[asyncio.Task[object]] = set()
        self._open = False
        self.tls: TlsEntry | None = None

    def use_tls(
        self,
        context: Callable[[], ssl.SSLContext],
        per_address: int,
        trusted: Callable[[str], bool],
    ) -> None:
        """Serve TLS: each new connection with `context()` as it is when the connection comes.

        `per_address`: connections one untrusted address may have silent or in their
        handshake at once (edge.tls.sniff).
        """
        self.tls = TlsEntry(
            context, self._start, self.loop, TLS_FIRST_BYTE_TIMEOUT, per_address, trusted
        )

    @classmethod
    def bind(
        cls,
        host: str,
        port: int,
        protocol_factory: Callable[[], asyncio.Protocol],
        loop: asyncio.AbstractEventLoop,
        *,
        backlog: int,
        reuse_address: bool,
    ) -> Listener:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            if reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return cls(sock, protocol_factory, loop)

    def start(self) -> None:
        self._open = True
        self.loop.add_reader(self.sock.fileno(), self._accept_ready)

    def _accept_ready(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                connection, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as e:  # out of descriptors, say: try again on the next turn
                log.warning("accepting a connection failed: %s", e)
                return
            connection.setblocking(False)
            with contextlib.suppress(OSError):
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                self.tls.take(connection)
            else:
                self._start(connection, None, None, None)

    def _start(
        self,
        connection: socket.socket,
        context: ssl.SSLContext | None,
        factory: Callable[[], asyncio.Protocol] | None,
        done: Callable[[], None] | None,
    ) -> None:
        if context is None:
            started = self.loop.connect_accepted_socket(
                factory or self.protocol_factory, connection
            )
        else:
            started = self.loop.connect_accepted_socket(
                factory or self.protocol_factory,
                connection,
                ssl=context,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
            )
        task = self.loop.create_task(started)
        self._starting.add(task)
        task.add_done_callback(self._started)
        if done is not None:
            task.add_done_callback(lambda _: done())

    def _started(self, task: asyncio.Task[object]) -> None:
        self._starting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("a connection could not be started: %r", task.exception())

    def close(self) -> None:
        """Stop accepting; connections already accepted live on."""
        if self._open:
            self._open = False
            self.loop.remove_reader(self.sock.fileno())
        if self.tls is not None:
            self.tls.close()
        self.sock.close()

    async def wait_started(self) -> None:
        """Let connections accepted just before close() finish starting."""
        if self._starting:
            await asyncio.gather(*self._starting, return_exceptions=True)
