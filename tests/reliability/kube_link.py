"""A switchable TCP link between podgate and its Kubernetes API, to take the API away and back.

`KubeLink` listens on 127.0.0.1 port 0 and relays bytes to the API server.
Its `mode` says what a client meets: "pass" (relayed), "refuse" (each
connection is reset at once, as a crashed API server or a dead load
balancer), "silent" (accepted and read, never answered, as a partitioned
network). Leaving "pass" cuts every relayed connection, watch streams
included, the way an API server going away does. Test helper only: it
never listens beyond loopback and knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Literal

Mode = Literal["pass", "refuse", "silent"]

_CHUNK = 64 * 1024


class KubeLink:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self.port = 0
        self.connections_cut = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def set_mode(self, mode: Mode) -> None:
        if mode != "pass":
            for writer in list(self._writers):  # the API went away: its connections too
                _abort(writer)
                self.connections_cut += 1
        self.mode = mode

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            _abort(writer)  # every relay sees its sockets end and returns
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.mode == "refuse":
                _abort(writer)
                return
            if self.mode == "silent":
                while await reader.read(_CHUNK):
                    pass
                return
            await self._relay(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Only stop() cancels, as a last resort; asyncio's server callback would log a
            # cancelled connection task as an error, and nobody awaits its result.
            return
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            _abort(writer)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers.add(up_writer)
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
            _abort(up_writer)


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(_CHUNK):
            sink.write(data)
            await sink.drain()
    finally:
        with contextlib.suppress(OSError):
            if sink.can_write_eof():
                sink.write_eof()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (SO_LINGER 0), as a vanished peer looks."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()
