"""RoundRobinBalancer: a small TCP load balancer for tests, standing in for a Service.

Each accepted client connection goes to the next backend in turn; bytes are
piped both ways unchanged, a half-close (EOF) on one side is passed to the
other, and when both directions are done both sockets close. It records
which backend each connection went to, so a test can tell that a user's
requests reached both replicas.

It listens on 127.0.0.1 only, relays at most `max_connections` client
connections at once (more wait, accepted, for a slot) and never reads or
changes what it relays: no HTTP parsing, no retries on another backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Backend:
    host: str
    port: int

    @classmethod
    def of_url(cls, url: str) -> Backend:
        """A backend from "http://127.0.0.1:PORT" (the scheme is ignored: this is TCP)."""
        hostport = url.split("://", 1)[-1].split("/", 1)[0]
        host, _, port = hostport.rpartition(":")
        return cls(host, int(port))


@dataclass
class RoundRobinBalancer:
    backends: list[Backend]
    max_connections: int = 256
    connect_timeout: float = 5.0
    # Index of the backend each accepted connection went to, in order of arrival.
    picks: list[int] = field(default_factory=list)
    # Connections that could not reach their backend (closed at once, as a Service would).
    failed: int = 0
    _server: asyncio.Server | None = field(default=None, init=False)
    _turn: itertools.cycle[int] | None = field(default=None, init=False)
    _slots: asyncio.Semaphore | None = field(default=None, init=False)
    _relays: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def served(self) -> Counter[int]:
        """Connections per backend index so far."""
        return Counter(self.picks)

    async def start(self) -> None:
        if not self.backends:
            raise ValueError("a balancer needs at least one backend")
        self._turn = itertools.cycle(range(len(self.backends)))
        self._slots = asyncio.Semaphore(self.max_connections)
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def close(self) -> None:
        """Stop listening and cut every relayed connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._relays):
            task.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> RoundRobinBalancer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _accept(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        assert self._turn is not None and self._slots is not None
        # The turn is taken on arrival, so the order of picks is the order of connections.
        index = next(self._turn)
        self.picks.append(index)
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        try:
            async with self._slots:
                await self._relay(self.backends[index], client_in, client_out)
        finally:
            self._relays.discard(task)

    async def _relay(
        self,
        backend: Backend,
        client_in: asyncio.StreamReader,
        client_out: asyncio.StreamWriter,
    ) -> None:
        try:
            backend_in, backend_out = await asyncio.wait_for(
                asyncio.open_connection(backend.host, backend.port), self.connect_timeout
            )
        except (OSError, TimeoutError):
            self.failed += 1
            await _close(client_out)
            return
        try:
            await asyncio.gather(
                _pipe(client_in, backend_out),
                _pipe(backend_in, client_out),
            )
        finally:
            await _close(backend_out)
            await _close(client_out)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the sink; a reset ends the copy quietly."""
    try:
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (ConnectionError, OSError):
        # One side went away: close the other so the peer notices too.
        sink.close()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
