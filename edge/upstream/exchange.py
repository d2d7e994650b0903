"""The aiohttp lane's exchange with a pod: one request, and its answer streamed back.

`send_request` takes a connection from the edge's one pool (edge.upstream.pool,
which the fast lane draws on too: an idle connection, a released one handed
over, or a new one within the pool's cap on connections being opened to one
target), writes the request head, streams the body with backpressure (the
pod's socket full: the next chunk waits), and returns the pod's response head
as a `PodExchange` whose `chunks()` yields the body as it arrives, taken out of
its framing (web.StreamResponse frames it again). The exchange owns the
connection meanwhile (edge.upstream.pool.PodOwner) and reads the pod's bytes
with edge.upstream.response, the fast lane's strict parser, so both lanes
accept and refuse the same answers. Interim 1xx answers are skipped: aiohttp's
server cannot relay them, and the final answer follows on the same connection.

The pod's silence is timed only once it has the whole request. The body
streams in a task of its own, so an answer the pod gives before taking the
whole body (401, 413, or a streaming endpoint's head) is relayed at once
while the rest of the body goes on beside it; the task ends with the
exchange, and a body not sent whole keeps the connection from the pool.

It must never buffer a body whole (past read_buffer bytes waiting, the pod's
socket is no longer read), never retry a request that sent body bytes or is
not idempotent (only a pooled connection the pod had closed while idle is
retried, once, fresh), and never let socket or parse failures out other than
as edge.errors types. A connection goes back to
the pool only when the exchange ended exactly at a message end: the request
sent whole, the response read to its framed end, and no byte after it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from edge.errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from edge.upstream.pool import PodConnection, PodPool
from edge.upstream.response import (
    MAX_RESPONSE_HEAD,
    ChunkedDecoder,
    Framing,
    Garbage,
    ResponseHead,
    parse_response,
)
from routes import Target

IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))
_NO_COOKIES: frozenset[str] = frozenset()  # proxy.py drops podgate's cookies from the headers


async def send_request(
    pool: PodPool,
    target: Target,
    head: bytes,
    *,
    method: str,
    body: AsyncIterator[bytes] | None,
) -> PodExchange:
    """Send head (+ the streamed body) to the target; the exchange once the answer's head is in.

    Raises UpstreamError subclasses; whatever the body iterator raises passes through.
    """
    address = (target.host, target.port)
    retry_ok = body is None and method in IDEMPOTENT
    for attempt in (0, 1):
        connection, reused = await pool.acquire(address, fresh=attempt > 0)
        exchange = PodExchange(pool, connection, method == "HEAD")
        try:
            await exchange.send(head, body)
            return exchange
        except UpstreamError as e:
            exchange.discard()
            # A pooled connection the pod had closed while idle: once more, fresh.
            stale = reused and not exchange.heard and isinstance(e, UpstreamUnavailable)
            if attempt == 0 and stale and retry_ok:
                continue
            raise
        except BaseException:
            exchange.discard()  # cancelled (browser hang-up), or the body broke off
            raise
    raise AssertionError("unreachable")


class PodExchange:
    """One request and its response over one pod connection; its owner meanwhile."""

    __slots__ = (
        "body_task",
        "buffer",
        "buffered",
        "chunked",
        "connection",
        "content_length",
        "done",
        "error",
        "head",
        "head_request",
        "headers",
        "heard",
        "keep",
        "left",
        "pending",
        "pool",
        "reason",
        "sent",
        "settled",
        "status",
        "waiter",
        "write_paused",
        "write_waiter",
    )

    def __init__(self, pool: PodPool, connection: PodConnection, head_request: bool) -> None:
        self.pool = pool
        self.connection = connection
        self.head_request = head_request
        self.buffer = b""  # the start of a response head not complete yet
        self.head: ResponseHead | None = None
        self.status = 0
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.content_length: int | None = None
        self.pending: deque[bytes] = deque()  # body data not yet taken by chunks()
        self.buffered = 0
        self.left = 0  # Content-Length framing: body bytes still to come
        self.chunked: ChunkedDecoder | None = None
        self.heard = False  # any byte came from the pod
        self.sent = False  # the whole request went out
        self.done = False  # the response was read to its framed end
        self.keep = True  # nothing seen yet that forbids pooling the connection
        self.error: UpstreamError | None = None
        self.settled = False  # released or discarded
        self.waiter: asyncio.Future[None] | None = None  # send() or chunks(): the pod's bytes
        self.write_waiter: asyncio.Future[None] | None = None  # the body: the pod's socket
        self.body_task: asyncio.Task[None] | None = None  # the body after an early answer
        self.write_paused = False
        connection.owner = self

    # The connection's events (edge.upstream.pool.PodOwner).

    def pod_data(self, data: bytes) -> None:
        self.heard = True
        if self.done or self.error is not None:
            self.keep = False  # bytes past the answer's end: never the next one's
            return
        if self.head is None:
            rest = self._read_head(data)
            if rest is None:
                return
            self._wake()
            if not rest:
                return
            data = rest
        self._read_body(data)
        self._wake()

    def pod_lost(self) -> None:
        if self.head is not None and self.head.framing is Framing.UNTIL_CLOSE:
            self.done = True
            self.keep = False
        elif not self.done and self.error is None:
            why = "mid-response" if self.head is not None else "before answering"
            message = f"the server closed the connection {why}"
            self.error = UpstreamUnavailable(message, kind="reset")
        self._wake()

    def pod_timed_out(self) -> None:
        if self.done:
            return  # the answer is whole; release() or discard() decides
        self._fail(UpstreamTimeout("the server did not answer in time"))

    def pod_write_paused(self, paused: bool) -> None:
        self.write_paused = paused
        if not paused:
            self._wake()

    # Sending, from send_request.

    async def send(self, head: bytes, body: AsyncIterator[bytes] | None) -> None:
        """The request to the pod, then wait for the answer's head; raises UpstreamError."""
        connection = self.connection
        if connection.closed:  # lost between being opened or taken and now: no event will come
            raise UpstreamUnavailable(
                "the server closed the connection before answering", kind="reset"
            )
        connection.write(head)
        if body is None:
            self._all_sent()
        else:
            # The body streams in its own task, so an answer the pod gives before the
            # whole body is relayed at once while the rest goes on beside it (a pod may
            # still read it), as the fast lane does.
            self.body_task = task = connection.loop.create_task(self._stream_body(body))
            task.add_done_callback(self._body_done)
        while self.head is None and self.error is None:
            failure = self._body_failure()
            if failure is not None:
                raise failure  # the browser's body broke off (ClientGone): proxy.py answers
            await self._wait()
        if self.head is None:
            error = self.error
            assert error is not None
            if not self.sent and isinstance(error, UpstreamUnavailable):
                raise UpstreamUnavailable(
                    f"the server closed the connection while receiving the body: {error}",
                    kind="reset",
                ) from error
            raise error

    async def _stream_body(self, body: AsyncIterator[bytes]) -> None:
        """Body chunks to the pod as they come, each waiting while the pod's socket is full."""
        connection = self.connection
        while self.error is None and not connection.closed:
            try:
                chunk = await anext(body)
            except StopAsyncIteration:
                self._all_sent()
                return
            connection.write(chunk)
            while self.write_paused and self.error is None and not connection.closed:
                await self._wait(writing=True)

    def _body_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: send() raises it if no answer came first
        self._wake()

    def _body_failure(self) -> BaseException | None:
        task = self.body_task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    def _all_sent(self) -> None:
        self.sent = True
        if not self.connection.closed:
            self.connection.await_response()  # only now is the pod's silence its own

    # Reading, from proxy.py.

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises UpstreamError if the pod fails mid-body."""
        pending = self.pending
        limit = self.pool.settings.read_buffer
        while True:
            if pending:
                data = pending.popleft()
                self.buffered -= len(data)
                if self.connection.read_paused and self.buffered <= limit:
                    self.connection.pause_reading(False)
                yield data
            elif self.error is not None:
                raise self.error
            elif self.done:
                return
            else:
                await self._wait()

    def release(self) -> None:
        """Back to the pool if the exchange ended exactly at a message end; else closed."""
        if self.settled:
            return
        self.settled = True
        self._stop_body()
        connection = self.connection
        if self.done and self.keep and self.sent and self.error is None and not connection.closed:
            self.pool.release(connection)  # to a queued request of either lane, or idle
        else:
            connection.close()

    def discard(self) -> None:
        """Close the connection (browser gone, failure, body not read to its end)."""
        if not self.settled:
            self.settled = True
            self._stop_body()
            self.connection.close()

    def _stop_body(self) -> None:
        task = self.body_task
        if task is not None and not task.done():
            task.cancel()  # the rest of the body was never sent whole: no pooling either

    # Inside.

    def _read_head(self, data: bytes) -> bytes | None:
        """The bytes after the final response head, or None: incomplete, or failed."""
        buffer = self.buffer + data if self.buffer else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_RESPONSE_HEAD:
                    self._fail(UpstreamProtocolError("response head too large"))
                else:
                    self.buffer = buffer
                return None
            try:
                head = parse_response(buffer, end, self.head_request, _NO_COOKIES, False)
            except Garbage as e:
                self._fail(UpstreamProtocolError(f"invalid response from the server: {e}"))
                return None
            if head.status >= 200:
                break
            buffer = buffer[end + 4 :]  # interim (1xx): the final answer follows
        self.buffer = b""
        self._took_head(head, buffer[:end])
        return buffer[end + 4 :]

    def _took_head(self, head: ResponseHead, raw: bytes) -> None:
        self.head = head
        self.status = head.status
        status_line, *lines = raw.split(b"\r\n")
        self.reason = status_line[13:].decode("latin-1")  # after "HTTP/1.x NNN "
        headers = self.headers
        for line in lines:
            name, _, value = line.partition(b":")
            text = value.strip(b" \t").decode("utf-8", "surrogateescape")
            headers.append((name.decode("ascii"), text))
            if name.lower() == b"content-length":
                self.content_length = int(text)  # parse_response checked: one, all digits
        self.keep = head.keep_alive
        framing = head.framing
        if framing is Framing.NONE:
            self.done = True
        elif framing is Framing.LENGTH:
            self.left = head.length
        elif framing is Framing.CHUNKED:
            self.chunked = ChunkedDecoder()

    def _read_body(self, data: bytes) -> None:
        head = self.head
        assert head is not None
        framing = head.framing
        if framing is Framing.LENGTH:
            left = self.left
            if len(data) >= left:
                if len(data) > left:
                    self.keep = False
                    data = data[:left]
                self.done = True
            self.left = left - len(data)
            self._queue(data)
        elif framing is Framing.CHUNKED:
            chunked = self.chunked
            assert chunked is not None
            try:
                pieces, end = chunked.decode(data)
            except Garbage as e:
                self._fail(UpstreamProtocolError(f"invalid response from the server: {e}"))
                return
            for piece in pieces:
                self._queue(piece)
            if end >= 0:
                self.done = True
                if end < len(data):
                    self.keep = False
        elif framing is Framing.UNTIL_CLOSE:
            self._queue(data)
        else:
            self.keep = False  # bytes after a bodiless answer

    def _queue(self, data: bytes) -> None:
        if not data:
            return
        self.pending.append(data)
        self.buffered += len(data)
        if self.buffered > self.pool.settings.read_buffer:
            self.connection.pause_reading(True)  # the browser is slow: so is the pod

    def _fail(self, error: UpstreamError) -> None:
        self.error = error
        self.connection.abort()
        self._wake()

    async def _wait(self, *, writing: bool = False) -> None:
        waiter = self.connection.loop.create_future()
        if writing:
            self.write_waiter = waiter
        else:
            self.waiter = waiter
        try:
            await waiter
        finally:
            if writing:
                self.write_waiter = None
            else:
                self.waiter = None

    def _wake(self) -> None:
        for waiter in (self.waiter, self.write_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
