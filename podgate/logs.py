"""Logging set-up: one line per event, and quiet logs for expected failures.

A malformed request from a client is expected on a public port: aiohttp logs
it as an ERROR with a traceback, which would drown real faults. It becomes
one DEBUG line here; unknown errors keep their traceback.
"""

from __future__ import annotations

import logging
import sys

from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("podgate.edge")


class ExpectedClientErrors(logging.Filter):
    """Drops aiohttp's traceback for a client's malformed HTTP, logging a debug line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            log.debug("malformed request refused (%s): %s", error.code, error.message)
            return False
        return True


def quiet_expected_client_errors() -> None:
    """Install the filter on aiohttp's server logger (once, however often called)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ExpectedClientErrors) for f in server_log.filters):
        server_log.addFilter(ExpectedClientErrors())


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
