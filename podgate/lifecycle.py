"""Run podgate in the foreground: event loop, logging, signals, orderly stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys

from podgate.assembly import Podgate
from podgate.config import Config
from podgate.logs import setup_logging

log = logging.getLogger("podgate")


def run_forever(config: Config) -> int:
    """Serve until SIGINT or SIGTERM; the process exit status."""
    setup_logging(config.log_level)
    try:
        import uvloop
    except ImportError:  # uvloop is optional: plain asyncio works, just slower
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        return runner(_serve(config))
    except OSError as e:
        print(f"podgate: cannot start: {e}", file=sys.stderr)
        return 1


def settle_startup_objects() -> None:
    """Take everything alive after start out of the cyclic collector's sight.

    Modules, classes and functions (kubernetes_asyncio's models alone are tens of
    thousands) live as long as the process; scanning them in every full collection
    made each one pause the event loop for 50-120 ms during a spawn storm.
    """
    gc.collect()
    gc.freeze()


async def _serve(config: Config) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    podgate = Podgate(config)
    await podgate.start()
    settle_startup_objects()
    try:
        print(f"podgate: public {podgate.public_url}  ops {podgate.ops_url}", flush=True)
        await stop.wait()
        log.info("stopping")
    finally:
        await podgate.stop()
    return 0
