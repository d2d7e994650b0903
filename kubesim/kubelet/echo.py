"""Shared-process mode: in-process HTTP and WebSocket echo servers, one site per pod.

Pods whose container image is `kubesim/echo` (any tag) and which set no
command are served here instead of by a process of their own, so a
thousand pods fit on two cores. Every pod still listens on its own
127.x.y.z address and port. Like a notebook server, a pod whose env holds
KUBESIM_ECHO_TOKEN (or JUPYTERHUB_API_TOKEN, JUPYTER_TOKEN) answers 403 unless the request
carries that token (`Authorization: token …`, `Bearer …`, or `?token=`).

HTTP requests get back JSON describing what arrived (method, path, query,
headers, body); WebSocket messages are echoed back as they came. When a pod
stops, its open connections are cut, as its process dying would. Never
serves anything else and never touches the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

ECHO_IMAGE = "kubesim/echo"
TOKEN_VARIABLES = ("KUBESIM_ECHO_TOKEN", "JUPYTERHUB_API_TOKEN", "JUPYTER_TOKEN")


def is_echo_image(image: str) -> bool:
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return name == ECHO_IMAGE


@dataclass
class EchoPod:
    """One pod's listening site and the token it demands (None: open)."""

    site: web.TCPSite
    token: str | None
    pod_name: str


class EchoServers:
    """One aiohttp server shared by every echo pod; a TCP site per pod address."""

    def __init__(self) -> None:
        self._runner: web.ServerRunner | None = None
        self._pods: dict[tuple[str, int], EchoPod] = {}

    async def serve(self, address: str, port: int, token: str | None, pod_name: str) -> None:
        if self._runner is None:
            # handler_cancellation: a handler ends with its connection (a pod's
            # connections are cut when it stops).
            server = web.Server(self._handle, handler_cancellation=True)
            self._runner = web.ServerRunner(server, access_log=None)
            await self._runner.setup()
        site = web.TCPSite(self._runner, address, port, reuse_address=True)
        await site.start()
        self._pods[(address, port)] = EchoPod(site, token or None, pod_name)

    async def stop_serving(self, address: str, port: int) -> None:
        """Stop the pod's site and drop its open connections, as its process dying would."""
        pod = self._pods.pop((address, port), None)
        if pod is None:
            return
        await pod.site.stop()
        if self._runner is None or self._runner.server is None:
            return
        for handler in self._runner.server.connections:
            transport = handler.transport
            if transport is not None and _local_end(transport) == (address, port):
                transport.abort()

    async def close(self) -> None:
        for key in list(self._pods):
            await self.stop_serving(*key)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        pod = self._pods.get((sockname[0], sockname[1])) if sockname else None
        if pod is None:
            return web.Response(status=503, text="pod is not serving\n")
        if pod.token and _presented_token(request) != pod.token:
            return web.Response(status=403, text="403 Forbidden: token required\n")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await _echo_websocket(request)
        body = await request.read()
        return web.json_response(
            {
                "pod": pod.pod_name,
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "headers": dict(request.headers),
                "body": body.decode("utf-8", "replace"),
            }
        )


def _local_end(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    sockname = transport.get_extra_info("sockname")
    return (sockname[0], sockname[1]) if sockname else None


def _presented_token(request: web.BaseRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and value:
        return value.strip()
    return request.query.get("token")


async def _echo_websocket(request: web.BaseRequest) -> web.WebSocketResponse:
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    ws = web.WebSocketResponse(protocols=[p for p in protocols if p])
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            await ws.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    with contextlib.suppress(ConnectionError):
        await ws.close()
    return ws
