"""A pod as a process of its own, for faults that need a real process (kill -9) or a middlebox.

Run as ``python pod_process.py NAME``: serves on 127.0.0.1 port 0 and prints
the port on its first stdout line. Plain requests get ``NAME:<path>``;
?size=N answers N bytes of "x" (Content-Length), add &chunked=1 to send them
chunked in 16 KiB pieces; ?sleep=S waits first. A WebSocket upgrade is
echoed as ``NAME:<text>``. It must never listen beyond 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import WSMsgType, web

NAME = sys.argv[1] if len(sys.argv) > 1 else "pod"


async def handle(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Upgrade", "").lower() == "websocket":
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(f"{NAME}:{msg.data}")
        return ws
    await request.read()
    if "sleep" in request.query:
        await asyncio.sleep(float(request.query["sleep"]))
    if "size" not in request.query:
        return web.Response(text=f"{NAME}:{request.path}", headers={"X-Pod": NAME})
    size = int(request.query["size"])
    if "chunked" not in request.query:
        return web.Response(body=b"x" * size, headers={"X-Pod": NAME})
    response = web.StreamResponse(headers={"X-Pod": NAME})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, size, 16384):
        await response.write(b"x" * min(16384, size - start))
    await response.write_eof()
    return response


async def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    try:
        await asyncio.Event().wait()  # until the test terminates or kills us
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
