"""A user's server that can be made to fail: run by kubesim's kubelet as a pod's command.

Run as ``python frail_pod.py PORT``: serves on the pod's own address
($POD_IP, from the downward API) under $PODGATE_BASE_URL. It answers:

- ``ready``: 200, or 503 while the file ``$FRAIL_SICK_DIR/<user>.sick``
  exists (the test turns the readiness probe off and on with it);
- ``stream``: a chunk every 0.1 s for 30 s (a user mid-download);
- ``ws``: a WebSocket that echoes text;
- ``eat?mb=N``: takes N MiB of memory and keeps it (over the limit: OOM);
- anything else: ``frail:<pid>:<path>``, so a restarted server is told apart.

It must never listen anywhere but the loopback address kubesim gave it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from aiohttp import WSMsgType, web

BASE = os.environ.get("PODGATE_BASE_URL", "/")
USER = os.environ.get("PODGATE_USER", "user")
SICK = Path(os.environ.get("FRAIL_SICK_DIR", ".")) / f"{USER}.sick"
_held: list[bytes] = []  # memory taken by eat, kept so the RSS stays up


async def handle(request: web.Request) -> web.StreamResponse:
    what = request.path[len(BASE) :] if request.path.startswith(BASE) else request.path
    if what == "ready":
        return web.Response(status=503 if SICK.exists() else 200, text="ready?")
    if what == "ws":
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws
    if what == "stream":
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        for i in range(300):
            await response.write(f"chunk {i}\n".encode())
            await asyncio.sleep(0.1)
        await response.write_eof()
        return response
    if what == "eat":
        # Written bytes, not a zeroed allocation: the pages must really be resident.
        _held.append(b"m" * (int(request.query.get("mb", "1")) << 20))
        return web.Response(text=f"holding {len(_held)}")
    return web.Response(text=f"frail:{os.getpid()}:{request.path}")


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    host = os.environ["POD_IP"]
    web.run_app(app, host=host, port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
