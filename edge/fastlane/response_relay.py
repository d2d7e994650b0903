"""Relaying the pod's response to the browser, and the pod's failures.

The response head is checked by edge.upstream.response, its body delimited
by length, chunk framing or close and relayed as it arrives (a full browser
socket pauses reading from the pod). A pooled connection the pod had closed
while idle is retried once, fresh, for idempotent bodiless requests. Failures
before the response head become edge.errors pages (503, 504, 502); after it,
the browser connection is cut off so the truncation shows.
"""

from __future__ import annotations

import logging

from edge.errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from edge.fastlane.state import IDEMPOTENT, ConnectionState
from edge.upstream.response import (
    MAX_RESPONSE_HEAD,
    ChunkedFraming,
    Framing,
    Garbage,
    parse_response,
)

# One logger for the connection, whichever file a step of it lives in.
log = logging.getLogger("edge.fastlane.protocol")


EMPTY: frozenset[str] = frozenset()


class ResponseRelay(ConnectionState):
    """The pod's answer to the browser, or an error page, or a cut-off."""

    __slots__ = ()

    def pod_data(self, data: bytes) -> None:
        if self.head_sent:
            self._relay(data)
            return
        request = self.request
        assert request is not None
        if self.body_left:
            # An answer before the whole body: the rest cannot be told from a next request.
            self.close_after = True
        buffer = self.resp_buf + data if self.resp_buf else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_RESPONSE_HEAD:
                    self._fail(UpstreamProtocolError("response head too large"))
                else:
                    self.resp_buf = buffer
                return
            try:
                head = parse_response(
                    buffer,
                    end,
                    request.method == "HEAD",
                    # The hub sets podgate's own cookies; no pod may.
                    EMPTY if self.route is self.lane.hub_route else self.lane.reserved_cookies,
                    self.close_after,
                )
            except Garbage as e:
                self._fail(UpstreamProtocolError(f"invalid response from the server: {e}"))
                return
            if head.status >= 200:
                break
            self._write(head.client_head)  # 1xx: relayed, then the real head follows
            buffer = buffer[end + 4 :]
            if not buffer:
                self.resp_buf = b""
                return
        self.resp_buf = b""
        self.head_sent = True
        self.status = head.status
        id_line = self._id_line()
        self.framing = framing = head.framing
        self.pod_keep = head.keep_alive and not self.websocket
        body_at = end + 4
        rest = len(buffer) - body_at
        if framing is Framing.NONE:
            if rest:
                self.pod_keep = False  # bytes after a bodiless response: never reuse it
            self._write(head.client_head[:-2] + id_line + b"\r\n")
            self._response_done()
            return
        if framing is Framing.LENGTH:
            self.resp_left = head.length
            if rest <= head.length:
                # The common case: one write, the pod's own bytes when nothing changed.
                if not self.closed:
                    self.transport.write(  # type: ignore[union-attr]
                        buffer[: end + 2] + id_line + buffer[end + 2 :]
                        if head.verbatim
                        else head.client_head[:-2] + id_line + b"\r\n" + buffer[body_at:]
                    )
                self.counted = rest
                self.lane.stats.bytes_to_client += rest
                self.resp_left = left = head.length - rest
                if not left:
                    self._response_done()
                return
        elif framing is Framing.CHUNKED:
            self.chunks = ChunkedFraming()
        self._write(head.client_head[:-2] + id_line + b"\r\n")
        if rest:
            self._relay(buffer[body_at:])

    def _relay(self, data: bytes) -> None:
        framing = self.framing
        if framing is Framing.LENGTH:
            left = self.resp_left
            size = len(data)
            if size < left:
                self.resp_left = left - size
                self._write(data)
                self._count(size)
                return
            if size > left:
                self.pod_keep = False  # more than the pod announced: never reuse it
                data = data[:left]
            self.resp_left = 0
            self._write(data)
            self._count(left)
            self._response_done()
        elif framing is Framing.CHUNKED:
            chunks = self.chunks
            assert chunks is not None
            try:
                end = chunks.feed(data)
            except Garbage as e:
                self._broken("protocol", f"bad chunk framing: {e}")
                return
            if end >= 0 and end < len(data):
                self.pod_keep = False
                data = data[:end]
            self._write(data)
            self._count(chunks.payload - self.counted)
            if end >= 0:
                self._response_done()
        else:
            self._write(data)
            self._count(len(data))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _count(self, size: int) -> None:
        self.counted += size
        self.lane.stats.bytes_to_client += size

    def pod_lost(self) -> None:
        """The pod closed its connection (the owner was this connection)."""
        self.pod = None
        if self.request is None:
            return
        if not self.head_sent:
            if (
                self.pod_reused
                and not self.retried
                and not self.resp_buf
                and self.request.content_length == 0
                and self.request.method in IDEMPOTENT
            ):
                # A pooled connection the pod had closed while idle: once more, fresh.
                self.retried = True
                route = self.route
                assert route is not None
                self._connect((route.target.host, route.target.port))
                return
            self._fail(UpstreamUnavailable("the server closed the connection", kind="reset"))
        elif self.framing is Framing.UNTIL_CLOSE:
            self._finish()
        else:
            self._broken("reset", "the server closed the connection mid-response")

    def pod_timed_out(self) -> None:
        if self.pod is not None:
            self.pod.abort()
            self.pod = None
        if not self.head_sent:
            self._fail(UpstreamTimeout("the server did not answer in time"))
        else:
            self._broken("timeout", "the server stopped sending mid-response")

    def _response_done(self) -> None:
        pod, self.pod = self.pod, None
        if pod is not None:
            if self.pod_keep and not self.body_left:
                self.lane.pool.release(pod)
            else:
                pod.close()
        if self.body_left:
            self.close_after = True  # the rest of the body cannot be told from the next request
        self._finish()

    def _fail(self, error: UpstreamError) -> None:
        """The pod failed before any response byte went out: an error page instead."""
        request = self.request
        assert request is not None
        lane = self.lane
        lane.stats.upstream_error(error.kind)
        log.info(
            "upstream %s for %s %s: %s",
            error.kind,
            request.method,
            request.raw_path,
            error,
            extra={"request_id": self.request_id, "status": error.status},
        )
        if self.pod is not None:
            self.pod.close()
            self.pod = None
        close = self.close_after or self.body_left > 0
        self.close_after = close
        self.status = error.status
        self.framing = Framing.NONE
        self._write(self._with_id(lane.page(error, close)))
        self._finish()

    def _broken(self, kind: str, why: str) -> None:
        """The pod failed after the head went out: cut the browser off so it sees it."""
        request = self.request
        assert request is not None
        self.lane.stats.upstream_error(kind)
        log.info(
            "upstream %s mid-response on %s: %s",
            kind,
            request.raw_path,
            why,
            extra={"request_id": self.request_id},
        )
        if self.pod is not None:
            self.pod.abort()
            self.pod = None
        if self.transport is not None:
            self.transport.abort()
        self.closed = True
        self._finish()

    def _with_id(self, page: bytes) -> bytes:
        """An error page with this request's id among its headers."""
        end = page.find(b"\r\n\r\n") + 2
        return page[:end] + self._id_line() + page[end:]
