"""Run podgate in the foreground: event loop, logging, signals, orderly stop.

SIGTERM (or SIGINT) starts the drain: the public port stops accepting at
once, requests in flight are answered, WebSockets are closed with 1001 Going
Away, all within `shutdown_grace_seconds`; then the process exits 0. Pods
are never touched on the way out: the control plane's stop leaves them
running, and routes come back from the pod watch at the next start.
SIGHUP reloads the config (podgate.reload), as does a change of its file.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time

from edge.tls import CertificateProblem, load_certificate
from podgate.assembly import Podgate
from podgate.config import Config
from podgate.heap import HeapKeeper
from podgate.logs import setup_logging
from podgate.ports import ListenFailed, check_addresses
from podgate.reload import ConfigReloader
from podgate.schema import ConfigError
from podgate.secret_files import warn_if_exposed
from podgate.welcome import welcome_text

log = logging.getLogger("podgate")


def run_forever(config: Config, config_path: str | None = None) -> int:
    """Serve until SIGINT or SIGTERM; the process exit status. `config_path` is reloaded."""
    try:
        # Before anything else is started or printed (the dummy password, say).
        check_addresses({"listen": config.listen_address, "ops_listen": config.ops_address})
    except ListenFailed as e:
        print(f"podgate: {e}", file=sys.stderr)
        return 1
    tls = config.tls
    if tls is not None and tls.cert_file is not None and tls.key_file is not None:
        try:  # a certificate that cannot be served: one line before anything else is said
            load_certificate(tls.cert_file, tls.key_file)
        except CertificateProblem as e:
            print(f"podgate: config error: tls: {e}", file=sys.stderr)
            return 2
    setup_logging(config.log_level, config.log_format)
    warn_if_exposed(config_path)
    try:
        import uvloop
    except ImportError:  # uvloop is optional: plain asyncio works, just slower
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        return runner(_serve(config, config_path))
    except ListenFailed as e:  # taken between the check and the bind
        print(f"podgate: {e}", file=sys.stderr)
        return 1
    except ConfigError as e:  # found only at start: a TLS certificate that cannot be served
        print(f"podgate: config error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"podgate: cannot start: {e}", file=sys.stderr)
        return 1


async def _serve(config: Config, config_path: str | None = None) -> int:
    stop = asyncio.Event()
    signals: list[str] = []
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            log.info("%s again: still draining", signum.name)
            return
        signals.append(signum.name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    podgate = Podgate(config)
    await podgate.start()
    heap = HeapKeeper()
    heap.start()  # what start built lives as long as the process: out of the collector's way
    reloader = ConfigReloader(podgate, config_path)
    try:
        await reloader.start()
        loop.add_signal_handler(signal.SIGHUP, reloader.request)
        # The first line is for scripts (tests wait for it); the block is for people.
        print(f"podgate: public {podgate.public_url}  ops {podgate.ops_url}")
        hub = podgate.control.hub if podgate.control is not None else None
        authenticator = hub.authenticator if hub is not None else None
        print(welcome_text(config, podgate.public_url, podgate.ops_url, authenticator), flush=True)
        await stop.wait()
        log.info(
            "%s: draining for at most %g s",
            signals[0] if signals else "stop",
            config.shutdown_grace_seconds,
            extra={"grace_seconds": config.shutdown_grace_seconds},
        )
    finally:
        started = time.monotonic()
        loop.remove_signal_handler(signal.SIGHUP)
        heap.stop()
        await reloader.stop()
        await podgate.stop()
    log.info("stopped", extra={"drain_seconds": round(time.monotonic() - started, 3)})
    return 0
