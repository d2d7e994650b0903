"""The benchmark's aiohttp upstream: WebSocket echo, WebSocket bulk source, upload sink.

Run as a standalone script (it imports nothing of the project) on a
loopback port; every peer routes /user/bench/app/ here. It must stay
cheap per message so it is never what a run measures.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import WSMsgType, web


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=0)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def source(request: web.Request) -> web.WebSocketResponse:
    """On "bulk TOTAL SIZE", send TOTAL bytes in SIZE-byte binary messages, then "done"."""
    ws = web.WebSocketResponse(compress=False, max_msg_size=0)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is not WSMsgType.TEXT or not msg.data.startswith("bulk "):
            continue
        _, total_s, size_s = msg.data.split()
        total, size = int(total_s), int(size_s)
        payload = b"\0" * size
        sent = 0
        while sent < total:
            await ws.send_bytes(payload)
            sent += size
        await ws.send_str(f"done {sent}")
    return ws


async def upload(request: web.Request) -> web.Response:
    """Read the whole body as it streams in and answer with its length."""
    received = 0
    async for chunk in request.content.iter_any():
        received += len(chunk)
    return web.Response(text=str(received))


def build_app() -> web.Application:
    app = web.Application(client_max_size=0)
    app.router.add_get("/user/bench/app/echo", echo)
    app.router.add_get("/user/bench/app/source", source)
    app.router.add_post("/user/bench/app/upload", upload)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    web.run_app(
        build_app(), host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=4096
    )


if __name__ == "__main__":
    main()
