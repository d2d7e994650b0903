"""The pod's side of a WebSocket upgrade, for both lanes.

`connect_pod` opens a dedicated connection to the route's target (never one
of the HTTP pools: an upgraded connection never returns to a pool) and
`read_upgrade_answer` reads the pod's final answer to the upgrade request
with edge.websocket.handshake's bounded parser. The aiohttp lane
(edge.websocket.aiohttp_lane) and the fast lane (edge.fastlane.websocket)
both open their pod side here.
"""

from __future__ import annotations

import asyncio
import ssl

from edge.errors import UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from edge.websocket.handshake import (
    BadPodResponse,
    PodResponseHead,
    parse_response_head,
    split_response_head,
)
from edge.websocket.relay import PodLink
from routes import Target

_TLS_CONTEXT: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    global _TLS_CONTEXT
    if _TLS_CONTEXT is None:
        _TLS_CONTEXT = ssl.create_default_context()
    return _TLS_CONTEXT


async def connect_pod(target: Target, connect_timeout: float) -> PodLink:
    """A dedicated connection to the pod for one WebSocket (never from the HTTP pool)."""
    loop = asyncio.get_running_loop()
    host, port = target.host, target.port
    tls = _tls_context() if target.scheme == "https" else None
    try:
        async with asyncio.timeout(connect_timeout):
            _, pod = await loop.create_connection(
                PodLink, host, port, ssl=tls, server_hostname=host if tls else None
            )
    except TimeoutError as e:
        raise UpstreamTimeout(f"connecting to {host}:{port} timed out") from e
    except OSError as e:
        raise UpstreamUnavailable(f"connecting to {host}:{port} failed: {e}") from e
    return pod


async def read_upgrade_answer(pod: PodLink, seconds: float) -> tuple[PodResponseHead, bytes]:
    """The pod's final answer to an upgrade request, parsed and as it came.

    Interim answers (100, 103) are skipped; what followed the head stays in
    the pod's buffer. Both WebSocket relays (aiohttp's side and the fast lane)
    read the pod's answer here.
    """
    try:
        async with asyncio.timeout(seconds):
            while True:
                split = split_response_head(pod.buffered)
                if split is not None:
                    head_bytes, _ = split
                    # Leave what followed the head (pod bytes after its 101,
                    # or the start of a refusal's body) in the buffer.
                    pod.take_buffered(len(head_bytes) + 4)
                    head = parse_response_head(head_bytes)
                    if head.status == 101 or not 100 <= head.status < 200:
                        return head, head_bytes + b"\r\n\r\n"
                    continue  # an interim answer (100, 103): the real one follows
                if pod.closed:
                    raise UpstreamUnavailable("the pod closed before answering", kind="reset")
                await pod.wait_for_data()
    except TimeoutError as e:
        raise UpstreamTimeout("the pod did not answer the WebSocket upgrade in time") from e
    except BadPodResponse as e:
        raise UpstreamProtocolError(f"bad answer to the WebSocket upgrade: {e}") from e
