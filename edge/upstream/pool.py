"""The edge's pod connections: raw keep-alive sockets, pooled per target, for both lanes.

One `PodPool` per edge (edge.app.Edge.pool) serves the fast lane and the
aiohttp lane alike: a connection one lane releases, the other may take.
A `PodConnection` is a bare asyncio.Protocol that hands every event to its
current owner (a fast-lane browser connection, or the aiohttp lane's
edge.upstream.exchange.PodExchange) and keeps one lazily re-armed timer for
both the read timeout (while a response is awaited) and the idle timeout
(while pooled), so a request costs no timer allocation.
`PodPool` keeps idle connections per (host, port), most recently used first,
and opens new ones with the connect timeout, a bounded number at once per
target. The fast lane asks it through callbacks (take_idle, reserve and a
PodWaiter, connect, unreserve); coroutines await the same in `acquire`.

It must never pool a connection that is mid-response or closed, and never
parse HTTP: the owner does. The owner releases a connection only when the
exchange ended exactly at a message end on both sides (the request's body
sent to the length its head declared, the response read to its framed end
with no byte past it); a byte arriving while idle closes it.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol, cast

from edge.errors import UpstreamTimeout, UpstreamUnavailable
from edge.settings import UpstreamSettings

Address = tuple[str, int]

# Connections being opened to one target at once; more requests wait for one of
# those or for a connection coming back. A burst of browsers on a cold pool would
# otherwise open hundreds at once and overflow the pod's accept queue (tornado
# listens with 128, nginx with 511), and dropped SYNs cost seconds.
MAX_OPENING_PER_TARGET = 64


class PodOwner(Protocol):
    """What a browser connection must do with its pod connection's events."""

    def pod_data(self, data: bytes) -> None: ...
    def pod_lost(self) -> None: ...
    def pod_timed_out(self) -> None: ...
    def pod_write_paused(self, paused: bool) -> None: ...


class PodWaiter(Protocol):
    """A browser connection queued for a pod connection to `address`."""

    def wants_pod(self, address: Address) -> bool: ...
    def pod_ready(self, connection: PodConnection) -> None: ...
    def pod_slot(self, address: Address) -> None: ...


class _Turn:
    """A place in the pool's queue (a PodWaiter) kept as a future, for `PodPool.acquire`."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[PodConnection | None] = (
            asyncio.get_running_loop().create_future()
        )

    def wants_pod(self, address: Address) -> bool:
        return not self.future.done()  # a cancelled request has left the queue

    def pod_ready(self, connection: PodConnection) -> None:
        self.future.set_result(connection)

    def pod_slot(self, address: Address) -> None:
        self.future.set_result(None)


class PodConnection(asyncio.Protocol):
    """One raw socket to a pod; owned by one request of either lane at a time, or idle."""

    __slots__ = (
        "address",
        "closed",
        "idle_since",
        "last_heard",
        "loop",
        "owner",
        "pool",
        "read_paused",
        "timer",
        "timer_at",
        "transport",
        "waiting",
    )

    def __init__(self, pool: PodPool, address: Address) -> None:
        self.pool = pool
        self.address = address
        # Made inside the loop it serves (a connection factory, or a running task).
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.owner: PodOwner | None = None
        self.closed = False
        self.waiting = False  # the whole request is sent: the pod's silence is timed
        self.read_paused = False  # the browser is slow: the pod's silence is not its fault
        self.last_heard = 0.0
        self.idle_since = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if owner is None:
            self.close()  # bytes from an idle pod: it is confused, never reuse it
            return
        self.last_heard = self.loop.time()
        owner.pod_data(data)

    def eof_received(self) -> bool:
        return False  # half-closed is closed: the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        owner, self.owner = self.owner, None
        if owner is not None:
            owner.pod_lost()
        else:
            self.pool.forget(self)

    def pause_writing(self) -> None:
        if self.owner is not None:
            self.owner.pod_write_paused(True)

    def resume_writing(self) -> None:
        if self.owner is not None:
            self.owner.pod_write_paused(False)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def await_response(self) -> None:
        """The request is sent: from now on the pod's silence counts."""
        self.waiting = True
        timeout = self.pool.settings.read_timeout
        if timeout is not None:
            self.last_heard = now = self.loop.time()
            self._arm(now + timeout)

    def pause_reading(self, paused: bool) -> None:
        if self.transport is None or self.closed or paused == self.read_paused:
            return
        self.read_paused = paused
        if paused:
            self.transport.pause_reading()
        else:
            self.last_heard = self.loop.time()
            self.transport.resume_reading()

    def close(self) -> None:
        self.owner = None
        self._cancel_timer()
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        self.owner = None
        self._cancel_timer()
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _arm(self, at: float) -> None:
        # Keep an earlier timer: it re-arms itself when it fires too soon.
        if self.timer is not None:
            if self.timer_at <= at:
                return
            self.timer.cancel()
        self.timer_at = at
        self.timer = self.loop.call_at(at, self._tick)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _tick(self) -> None:
        self.timer = None
        now = self.loop.time()
        settings = self.pool.settings
        if self.owner is None:
            deadline = self.idle_since + settings.idle_timeout
            if now >= deadline:
                self.pool.forget(self)
                self.close()
            else:
                self._arm(deadline)
        elif self.waiting and not self.read_paused and settings.read_timeout is not None:
            deadline = self.last_heard + settings.read_timeout
            if now >= deadline:
                self.owner.pod_timed_out()
            else:
                self._arm(deadline)


class PodPool:
    """Idle pod connections per target, and opening new ones."""

    def __init__(
        self,
        settings: UpstreamSettings,
        dial: Mapping[Address, Callable[[], socket.socket]] | None = None,
    ) -> None:
        self.settings = settings
        # Targets reached through a socket of their own making, not an address (the hub).
        self.dial = dial or {}
        self._idle: dict[Address, list[PodConnection]] = {}
        self._opening: dict[Address, int] = {}
        self._waiting: dict[Address, deque[PodWaiter]] = {}
        self._closed = False
        self.opened = 0  # connections ever opened: keep-alive reuse shows up here
        self.opening_peak = 0  # most connections ever being opened to one target at once

    def opening_count(self) -> int:
        """Opening slots held right now (0 when quiet: none may leak)."""
        return sum(self._opening.values())

    def idle_count(self) -> int:
        return sum(1 for stack in self._idle.values() for c in stack if not c.closed)

    async def acquire(self, address: Address, *, fresh: bool) -> tuple[PodConnection, bool]:
        """A connection to `address`, and whether it was used before (stale, maybe).

        `fresh`: not an idle one (the retry after a stale one), though a connection
        released to this request while it queues is taken, as the fast lane does.
        """
        connection = None if fresh else self.take_idle(address)
        if connection is not None:
            return connection, True
        turn = _Turn()
        if not self.reserve(address, turn):
            try:
                handed = await turn.future
            except asyncio.CancelledError:
                # Cancelled just after our turn came: give it on, or it is lost for good.
                future = turn.future
                if future.done() and not future.cancelled():
                    given = future.result()
                    if given is None:
                        self.unreserve(address)
                    else:
                        self.release(given)
                raise
            if handed is not None:
                return handed, True
        try:
            return await self.connect(address), False
        finally:
            self.unreserve(address)

    def take_idle(self, address: Address) -> PodConnection | None:
        stack = self._idle.get(address)
        while stack:
            connection = stack.pop()  # most recently used first: likeliest to be alive
            transport = connection.transport
            if not connection.closed and transport is not None and not transport.is_closing():
                return connection
            connection.close()
        return None

    def reserve(self, address: Address, waiter: PodWaiter) -> bool:
        """True: the caller may open a connection now (and must unreserve() after).

        False: too many are being opened; the waiter is queued and later gets
        pod_ready(connection) with a released connection, or pod_slot(address).
        """
        opening = self._opening.get(address, 0)
        if opening < MAX_OPENING_PER_TARGET:
            self._opening[address] = opening + 1
            self.opening_peak = max(self.opening_peak, opening + 1)
            return True
        self._waiting.setdefault(address, deque()).append(waiter)
        return False

    def unreserve(self, address: Address) -> None:
        """An opening finished (either way): its slot goes to the next waiter, if any."""
        self._opening[address] -= 1
        waiter = self._next_waiter(address)
        if waiter is not None:
            self._opening[address] += 1
            waiter.pod_slot(address)

    def _next_waiter(self, address: Address) -> PodWaiter | None:
        waiting = self._waiting.get(address)
        while waiting:
            waiter = waiting.popleft()
            if waiter.wants_pod(address):  # browsers that left meanwhile are skipped
                return waiter
        return None

    async def connect(self, address: Address) -> PodConnection:
        """A new connection; raises UpstreamUnavailable or UpstreamTimeout."""
        host, port = address
        dial = self.dial.get(address)
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                loop = asyncio.get_running_loop()
                if dial is not None:
                    _, connection = await loop.create_connection(
                        lambda: PodConnection(self, address), sock=dial()
                    )
                else:
                    _, connection = await loop.create_connection(
                        lambda: PodConnection(self, address), host, port
                    )
        except TimeoutError as e:
            raise UpstreamTimeout(f"connecting to {host}:{port} timed out") from e
        except OSError as e:
            raise UpstreamUnavailable(f"cannot connect to {host}:{port}: {e}") from e
        self.opened += 1
        return connection

    def release(self, connection: PodConnection) -> None:
        """Back to the pool after a complete response the pod will keep alive."""
        connection.owner = None
        connection.waiting = False
        if connection.read_paused:
            connection.pause_reading(False)
        if self._waiting and not connection.closed:
            waiter = self._next_waiter(connection.address)
            if waiter is not None:
                waiter.pod_ready(connection)  # straight to a queued request
                return
        stack = self._idle.setdefault(connection.address, [])
        if self._closed or connection.closed or len(stack) >= self.settings.max_idle_per_target:
            connection.close()
            return
        connection.idle_since = now = connection.loop.time()
        connection._arm(now + self.settings.idle_timeout)
        stack.append(connection)

    def forget(self, connection: PodConnection) -> None:
        stack = self._idle.get(connection.address)
        if stack and connection in stack:
            stack.remove(connection)

    async def close(self) -> None:
        """Close every idle connection; later releases close instead of pooling."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for stack in idle.values():
            for connection in stack:
                connection.close()
