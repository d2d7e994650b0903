"""Getting a pod connection for a started request, and relaying its body.

The edge's pool (edge.upstream.pool) gives an idle connection, or a slot to
open one, or a place in its queue. The rewritten head goes first, with a
small body that came along in the same write; then exactly Content-Length
body bytes as they arrive. A full pod socket pauses reading from the browser.
"""

from __future__ import annotations

from edge.errors import UpstreamError
from edge.fastlane.state import BUFFER_LIMIT, PAUSED_BUFFER, PAUSED_POD_FULL, ConnectionState
from edge.upstream.pool import Address, PodConnection


class BodyRelay(ConnectionState):
    """A pod connection for the request, and the request body to it."""

    __slots__ = ()

    def _connect(self, address: Address) -> None:
        """Open a pod connection, or queue for one when too many are being opened."""
        if self.lane.pool.reserve(address, self):
            self.pod_slot(address)
        else:
            self.queued_for = address

    def wants_pod(self, address: Address) -> bool:
        wanted = self.queued_for == address and self.request is not None and not self.closed
        self.queued_for = None
        return wanted

    def pod_ready(self, connection: PodConnection) -> None:
        """A released pod connection, handed straight to this queued request."""
        self._attach(connection, reused=True)

    def pod_slot(self, address: Address) -> None:
        """This request may open its pod connection now (the pool reserved it)."""
        self.reserved_for = address
        self.connecting = self.lane.loop.create_task(self._open(address))

    def _release_slot(self) -> None:
        """Give the pool's opening slot back, exactly once (task done, failed or cancelled)."""
        address, self.reserved_for = self.reserved_for, None
        if address is not None:
            self.lane.pool.unreserve(address)

    async def _open(self, address: Address) -> None:
        try:
            pod = await self.lane.pool.connect(address)
        except UpstreamError as e:
            self._release_slot()
            self.connecting = None
            if self.request is not None and not self.closed:
                self._fail(e)
            return
        except BaseException:
            self._release_slot()
            raise
        self._release_slot()
        self.connecting = None
        if self.request is None or self.closed:
            pod.close()  # the browser left while we connected
            return
        self._attach(pod, reused=False)

    def _attach(self, pod: PodConnection, *, reused: bool) -> None:
        self.pod = pod
        self.pod_reused = reused
        pod.owner = self
        if self.write_full:
            pod.pause_reading(True)
        buffer = self.buffer
        sendable = min(self.body_left, len(buffer))
        if sendable and sendable < 16384:
            # A small body that came with the head goes in the same write.
            body = buffer if sendable == len(buffer) else buffer[:sendable]
            self.buffer = buffer[sendable:]
            pod.write(self.pod_head + body)
            self._sent_body(sendable)
        else:
            pod.write(self.pod_head)
            if sendable:
                self._pump_body()
        if not self.body_left and self.pod is pod:
            pod.await_response()

    def _send_body(self, data: bytes) -> None:
        pod = self.pod
        assert pod is not None
        pod.write(data)
        self._sent_body(len(data))
        if not self.body_left and self.pod is pod:
            pod.await_response()

    def _sent_body(self, count: int) -> None:
        self.body_left -= count
        self.lane.stats.bytes_to_upstream += count

    def _pump_body(self) -> None:
        buffer = self.buffer
        sendable = min(self.body_left, len(buffer))
        if not sendable:
            return
        self.buffer = buffer[sendable:]
        self._send_body(buffer if sendable == len(buffer) else buffer[:sendable])
        if len(self.buffer) <= BUFFER_LIMIT:
            self._unpause(PAUSED_BUFFER)

    def pod_write_paused(self, paused: bool) -> None:
        if paused:
            self._pause(PAUSED_POD_FULL)
        else:
            self._unpause(PAUSED_POD_FULL)
