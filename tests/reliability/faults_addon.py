"""mitmproxy addon for the reliability suite: faults between podgate and a pod, chosen per request.

Loaded by mitmdump (``mitmdump --mode reverse:POD -s faults_addon.py``), in
mitmproxy's own venv: it imports only the standard library and mitmproxy.
The request's query string picks the fault (the pod never sees it differ):

    fault=latency&ms=N     hold the request N ms, then forward it
    fault=stall&s=S        hold the request S seconds (past the edge's read timeout)
    fault=reset            kill the connection before any response byte
    fault=reset-mid        send the head and the first body chunk, then kill the connection
    fault=truncate         promise the whole Content-Length, send half of it, then close

WebSocket messages whose text contains "drop-me" are dropped (the other
side never sees them); "kill-me" cuts both connections of the WebSocket.
This addon must never touch any address but the pod it fronts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from mitmproxy import ctx, http
from mitmproxy.flow import Error


def _fault(flow: http.HTTPFlow) -> str:
    return flow.request.query.get("fault", "")


class PodFaults:
    async def request(self, flow: http.HTTPFlow) -> None:
        fault = _fault(flow)
        if fault == "latency":
            await asyncio.sleep(int(flow.request.query.get("ms", "100")) / 1000)
        elif fault == "stall":
            await asyncio.sleep(float(flow.request.query.get("s", "5")))
        elif fault == "reset":
            flow.kill()

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if _fault(flow) == "reset-mid" and flow.response is not None:
            flow.response.stream = _first_chunk_then_kill(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if _fault(flow) != "truncate" or response is None or response.raw_content is None:
            return
        whole = response.raw_content
        # Keep the promise of the full length in the head, send only half the bytes,
        # and close: the next hop must notice the body is short.
        response.raw_content = whole[: len(whole) // 2]
        response.headers["content-length"] = str(len(whole))
        response.headers["connection"] = "close"


def _first_chunk_then_kill(flow: http.HTTPFlow):  # type: ignore[no-untyped-def]
    sent = {"chunks": 0}

    def relay(chunk: bytes) -> bytes | Iterable[bytes]:
        sent["chunks"] += 1
        if sent["chunks"] > 1 or not chunk:
            # Marked killed (flow.kill() is refused mid-stream): mitmproxy drops both
            # connections when the pod's response ends, so the rest never arrives.
            flow.error = Error(Error.KILLED_MESSAGE)
            return []  # not b"": mitmproxy would send an empty chunk, ending the body cleanly
        return chunk[: max(1, len(chunk) // 2)]

    return relay


class WebSocketFaults:
    def websocket_message(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None or not flow.websocket.messages:
            return
        message = flow.websocket.messages[-1]
        if b"kill-me" in message.content:
            message.drop()
            _abort_connections(flow)
        elif b"drop-me" in message.content:
            message.drop()


def _abort_connections(flow: http.HTTPFlow) -> None:
    """Cut both sockets of a flow, as a middlebox dying would.

    mitmproxy cannot kill a WebSocket flow in transit (flow.kill() is ignored
    after the upgrade), so this aborts the flow's transports directly.
    """
    handler = ctx.master.addons.get("proxyserver").connections.get(flow.client_conn.id)
    if handler is None:
        return
    for io in list(handler.transports.values()):
        transport = getattr(io.writer, "transport", None)
        if transport is not None:
            transport.abort()


addons = [PodFaults(), WebSocketFaults()]
