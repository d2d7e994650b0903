"""The benchmark's WebSocket load client: round-trips, bulk download, idle sockets.

Run as a standalone script (stdlib + aiohttp only), pinned to the load
core by the harness. It prints one JSON line of figures on stdout; every
mode is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import aiohttp

MESSAGE = "x" * 100


def _connect_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Cookie": args.cookie} if args.cookie else {}
    return {"headers": headers, "compress": 0, "max_msg_size": 0, "autoping": True}


async def round_trips(session: aiohttp.ClientSession, args: argparse.Namespace) -> dict[str, Any]:
    """Sequential 100-byte text round-trips on one socket for `args.seconds`."""
    async with session.ws_connect(args.url, **_connect_kwargs(args)) as ws:
        count = 0
        start = time.perf_counter()
        deadline = start + args.seconds
        while time.perf_counter() < deadline:
            await ws.send_str(MESSAGE)
            reply = await asyncio.wait_for(ws.receive(), timeout=10)
            if reply.type is not aiohttp.WSMsgType.TEXT or len(reply.data) != len(MESSAGE):
                return {"error": f"bad echo: {reply.type.name}"}
            count += 1
        elapsed = time.perf_counter() - start
    return {"round_trips": count, "seconds": elapsed}


async def bulk(session: aiohttp.ClientSession, args: argparse.Namespace) -> dict[str, Any]:
    """Ask the upstream to send `args.bytes` in `args.size`-byte messages; time their arrival."""
    async with session.ws_connect(args.url, **_connect_kwargs(args)) as ws:
        received = 0
        start = time.perf_counter()
        await ws.send_str(f"bulk {args.bytes} {args.size}")
        while True:
            msg = await asyncio.wait_for(ws.receive(), timeout=30)
            if msg.type is aiohttp.WSMsgType.BINARY:
                received += len(msg.data)
            elif msg.type is aiohttp.WSMsgType.TEXT and msg.data.startswith("done"):
                break
            else:
                return {"error": f"unexpected {msg.type.name}", "bytes": received}
        elapsed = time.perf_counter() - start
    return {"bytes": received, "seconds": elapsed}


async def idle(session: aiohttp.ClientSession, args: argparse.Namespace) -> dict[str, Any]:
    """Open `args.count` sockets, report, hold them until a line on stdin, then close."""
    gate = asyncio.Semaphore(args.concurrency)
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    failures: dict[str, int] = {}

    async def open_one() -> None:
        async with gate:
            try:
                ws = await session.ws_connect(args.url, **_connect_kwargs(args))
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                failures[type(e).__name__] = failures.get(type(e).__name__, 0) + 1
                return
            sockets.append(ws)

    start = time.perf_counter()
    opening = [asyncio.create_task(open_one()) for _ in range(args.count)]
    _done, pending = await asyncio.wait(opening, timeout=args.seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    report = {
        "opened": len(sockets),
        "failed": args.count - len(sockets),
        "failures": failures,
        "seconds": time.perf_counter() - start,
    }
    print(json.dumps(report), flush=True)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), timeout=120)
    # Still open after the hold? Count them: a proxy that dropped idle sockets shows here.
    alive = sum(1 for ws in sockets if not ws.closed)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {"still_open": alive}


MODES = {"rt": round_trips, "bulk": bulk, "idle": idle}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            return await asyncio.wait_for(
                MODES[args.mode](session, args), timeout=args.seconds + 150
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            return {"error": f"{type(e).__name__}: {e}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("--url", required=True)
    parser.add_argument("--cookie", default="")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--bytes", type=int, default=256 * 1024 * 1024)
    parser.add_argument("--size", type=int, default=64 * 1024)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
