"""The lean upstream connection pool: keep-alive HTTP/1.1 connections to pods.

aiohttp's ClientSession costs too much per request for a proxy hot path
(request/response objects, tracing, cookie jar, connector bookkeeping). This
pool keeps only what a proxy needs: per-target stacks of idle keep-alive
connections, each an asyncio protocol with aiohttp's C response parser
(aiohttp.client_proto.ResponseHandler, which gives read timeouts and
backpressure on the response body), and one core coroutine, `UpstreamPool.send`.

It must never buffer a body whole, never retry a request that sent body bytes
or is not idempotent, and never let socket or parser exceptions escape: they
become edge.errors types here. A connection is pooled again only when the
exchange ended exactly at a message end: the request sent whole (any failure
while sending closes it) and the response read to its end with nothing after
it (ResponseHandler.should_close is true for a partial body, a further parsed
message or leftover bytes, and `usable` checks it again when taken).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import ClientError, ClientPayloadError, ServerDisconnectedError
from aiohttp.client_exceptions import ClientOSError, SocketTimeoutError
from aiohttp.client_proto import ResponseHandler
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawResponseMessage
from aiohttp.streams import StreamReader

from edge.errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from edge.settings import UpstreamSettings
from routes import Target

# How long a pod that stopped reading a request body has to show its answer.
EARLY_ANSWER_WAIT = 1.0

IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))

Address = tuple[str, int]
SocketSource = Callable[[], socket.socket]


class UpstreamConnection:
    """One keep-alive socket to a pod; lives in the pool between requests."""

    __slots__ = ("address", "idle_timer", "protocol")

    def __init__(self, address: Address, protocol: ResponseHandler) -> None:
        self.address = address
        self.protocol = protocol
        self.idle_timer: asyncio.TimerHandle | None = None

    @property
    def usable(self) -> bool:
        return self.protocol.is_connected() and not self.protocol.should_close

    def write(self, data: bytes) -> None:
        transport = self.protocol.transport
        if transport is None:
            raise UpstreamUnavailable("connection closed while sending", kind="reset")
        transport.write(data)

    async def drain(self) -> None:
        """Wait while the pod's socket buffer is full (request body backpressure)."""
        if self.protocol.transport is None:
            raise UpstreamUnavailable("connection closed while sending", kind="reset")
        await self.protocol._drain_helper()

    def close(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        self.protocol.close()


@dataclass(slots=True)
class UpstreamResponse:
    """The pod's response head and its streaming body; give the connection back when done."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    content_length: int | None
    body: StreamReader
    connection: UpstreamConnection
    _pool: UpstreamPool = field(repr=False)
    _done: bool = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises UpstreamError if the pod fails mid-body."""
        read = self.body.readany
        while True:
            try:
                chunk = await read()
            except (ClientError, HttpProcessingError, OSError) as e:
                raise translate(e) from e
            if not chunk:
                return
            yield chunk

    def release(self) -> None:
        """Back to the pool if the body was read to its end and the pod keeps it alive."""
        if not self._done:
            self._done = True
            self._pool.release(self.connection)

    def discard(self) -> None:
        """Close the connection (client went away, error, unread body)."""
        if not self._done:
            self._done = True
            self.connection.close()


def translate(error: BaseException) -> UpstreamError:
    """Socket, timeout and parser errors from the pod as the edge's own errors."""
    if isinstance(error, UpstreamError):
        return error
    if isinstance(error, SocketTimeoutError | asyncio.TimeoutError | TimeoutError):
        return UpstreamTimeout("the server did not answer in time")
    if isinstance(error, HttpProcessingError):
        return UpstreamProtocolError(f"invalid response from the server: {error.message}")
    if isinstance(error, ServerDisconnectedError | ClientPayloadError):
        return UpstreamUnavailable("the server closed the connection", kind="reset")
    if isinstance(error, ConnectionRefusedError):
        return UpstreamUnavailable("connection refused")
    if isinstance(error, ClientOSError | OSError):
        return UpstreamUnavailable(f"connection failed: {error}", kind="reset")
    return UpstreamProtocolError(f"upstream failure: {error!r}")


class UpstreamPool:
    """Idle keep-alive connections per target, and the one way to send a request over them."""

    def __init__(
        self, settings: UpstreamSettings, connect_socket: SocketSource | None = None
    ) -> None:
        self.settings = settings
        # Where new connections come from when not dialed by address (the hub's link).
        self.connect_socket = connect_socket
        self._idle: dict[Address, deque[UpstreamConnection]] = {}
        self._closed = False
        self.opened = 0  # connections ever opened: keep-alive reuse shows up here

    def idle_count(self, target: Target | None = None) -> int:
        if target is not None:
            return len(self._idle.get((target.host, target.port), ()))
        return sum(len(q) for q in self._idle.values())

    async def request(
        self,
        target: Target,
        head: bytes,
        *,
        method: str,
        body: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        """The core coroutine: send head (+ streamed body) and return the response head.

        A stale pooled connection (the pod closed it while idle) is retried once
        on a fresh connection, only for idempotent requests that sent no body.
        """
        retry_ok = body is None and method in IDEMPOTENT
        for attempt in (0, 1):
            connection, reused = await self._acquire((target.host, target.port), method)
            try:
                connection.write(head)
                if body is not None:
                    try:
                        await self._send_body(connection, body)
                    except OSError as e:
                        return await self._early_answer(connection, method, e)
                # The pod's silence is only timed once it has the whole request.
                connection.protocol.start_timeout()
                return await self._read_head(connection, method)
            except UpstreamError as e:
                connection.close()
                stale = reused and isinstance(e, UpstreamUnavailable) and e.kind == "reset"
                if attempt == 0 and stale and retry_ok:
                    continue
                raise
            except BaseException:
                connection.close()
                raise
        raise AssertionError("unreachable")

    async def _send_body(self, connection: UpstreamConnection, body: AsyncIterator[bytes]) -> None:
        protocol = connection.protocol
        async for chunk in body:
            connection.write(chunk)
            if protocol._paused:  # only await when the socket buffer is actually full
                await connection.drain()

    async def _early_answer(
        self, connection: UpstreamConnection, method: str, error: OSError
    ) -> UpstreamResponse:
        """The pod stopped taking the body: it may have answered already (413, 401...).

        That answer is what the user should see; without one the pod failed us.
        """
        try:
            async with asyncio.timeout(EARLY_ANSWER_WAIT):
                return await self._read_head(connection, method)
        except (UpstreamError, TimeoutError):
            raise UpstreamUnavailable(
                f"the server closed the connection while receiving the body: {error}",
                kind="reset",
            ) from error

    async def _read_head(self, connection: UpstreamConnection, method: str) -> UpstreamResponse:
        try:
            message: RawResponseMessage
            message, payload = await connection.protocol.read()
        except (TimeoutError, ClientError, HttpProcessingError, OSError) as e:
            raise translate(e) from e
        length = message.headers.get("Content-Length")
        return UpstreamResponse(
            status=message.code,
            reason=message.reason,
            headers=[
                (k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
                for k, v in message.raw_headers
            ],
            content_length=int(length) if length is not None and length.isdigit() else None,
            body=payload,
            connection=connection,
            _pool=self,
        )

    async def _acquire(self, address: Address, method: str) -> tuple[UpstreamConnection, bool]:
        """A pooled connection if one is alive, else a new one; and whether it was pooled."""
        connection = self._take_idle(address)
        reused = connection is not None
        if connection is None:
            connection = await self._connect(address)
        self._expect_response(connection.protocol, method)
        return connection, reused

    def _expect_response(self, protocol: ResponseHandler, method: str) -> None:
        # A fresh parser per response, as aiohttp does; HEAD responses have no body.
        protocol.set_response_params(
            skip_payload=method == "HEAD",
            # A response with neither length nor chunks ends when the pod closes
            # (HTTP/1.0 servers, Connection: close): read it to the end.
            read_until_eof=True,
            auto_decompress=False,
            read_timeout=self.settings.read_timeout,
            read_bufsize=self.settings.read_buffer,
        )

    def _take_idle(self, address: Address) -> UpstreamConnection | None:
        idle = self._idle.get(address)
        while idle:
            connection = idle.pop()  # most recently used first: likeliest to be alive
            if connection.idle_timer is not None:
                connection.idle_timer.cancel()
                connection.idle_timer = None
            if connection.usable:
                return connection
            connection.close()
        return None

    async def _connect(self, address: Address) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                if self.connect_socket is not None:
                    _, protocol = await loop.create_connection(
                        lambda: ResponseHandler(loop), sock=self.connect_socket()
                    )
                else:
                    _, protocol = await loop.create_connection(
                        lambda: ResponseHandler(loop), address[0], address[1]
                    )
        except TimeoutError as e:
            raise UpstreamTimeout(f"connecting to {address[0]}:{address[1]} timed out") from e
        except OSError as e:
            raise UpstreamUnavailable(f"cannot connect to {address[0]}:{address[1]}: {e}") from e
        sock = protocol.transport.get_extra_info("socket") if protocol.transport else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.opened += 1
        return UpstreamConnection(address, protocol)

    def release(self, connection: UpstreamConnection) -> None:
        if self._closed or not connection.usable:
            connection.close()
            return
        idle = self._idle.setdefault(connection.address, deque())
        if len(idle) >= self.settings.max_idle_per_target:
            connection.close()
            return
        connection.protocol._drop_timeout()
        connection.idle_timer = asyncio.get_running_loop().call_later(
            self.settings.idle_timeout, self._expire, connection
        )
        idle.append(connection)

    def _expire(self, connection: UpstreamConnection) -> None:
        connection.idle_timer = None
        idle = self._idle.get(connection.address)
        if idle is not None:
            with contextlib.suppress(ValueError):
                idle.remove(connection)
        connection.close()

    async def close(self) -> None:
        """Close every idle connection; later releases close instead of pooling."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for queue in idle.values():
            for connection in queue:
                connection.close()
