"""Logging set-up: one line per event, as text, JSON or logfmt, and quiet expected failures.

Every record carries its time, level, logger and message, plus any extra
fields the caller passed (`extra={"user": ...}`) and the id of the request
being served (edge.request_id), so a log collector can follow one request
from the edge to the pod. A record is always exactly one line: tracebacks
and newlines in messages are escaped into their field, never printed raw.

A malformed request from a client is expected on a public port: aiohttp logs
it as an ERROR with a traceback, which would drown real faults. It becomes
one DEBUG line here; unknown errors keep their traceback.

This module configures logging only; it never decides what is logged.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

from aiohttp.http_exceptions import HttpProcessingError

from edge.request_id import current_request_id

log = logging.getLogger("podgate.edge")

# Attributes every LogRecord has; anything else on a record is an extra field.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


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


class RequestIdField(logging.Filter):
    """Adds the request id of the task being served, unless the caller gave one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "request_id" not in record.__dict__:
            request_id = current_request_id.get()
            if request_id is not None:
                record.request_id = request_id
        return True


def _extra_fields(record: logging.LogRecord) -> Iterator[tuple[str, Any]]:
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            yield key, value


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class _OneLine(logging.Formatter):
    """The fields of a record, in order: time, level, logger, message, extras, error."""

    def fields(self, record: logging.LogRecord) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = [
            ("time", _timestamp(record)),
            ("level", record.levelname.lower()),
            ("logger", record.name),
            ("message", record.getMessage()),
        ]
        out.extend(_extra_fields(record))
        if record.exc_info:
            out.append(("error", self.formatException(record.exc_info)))
        elif record.exc_text:
            out.append(("error", record.exc_text))
        if record.stack_info:
            out.append(("stack", self.formatStack(record.stack_info)))
        return out


class JsonFormatter(_OneLine):
    """One JSON object per line; values JSON cannot hold are written as their str()."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(dict(self.fields(record)), default=str, ensure_ascii=False)


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if text and not any(c in text for c in ' ="\\') and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)  # quoted; newlines and quotes escaped


class LogfmtFormatter(_OneLine):
    """key=value pairs, values quoted when they hold spaces, quotes or control characters."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in self.fields(record))


class TextFormatter(_OneLine):
    """For people at a terminal: "time LEVEL logger: message key=value", traceback below."""

    def format(self, record: logging.LogRecord) -> str:
        fields = self.fields(record)
        error = ""
        extras = []
        for key, value in fields[4:]:
            if key in ("error", "stack"):
                error += "\n" + str(value)
            else:
                extras.append(f" {key}={_logfmt_value(value)}")
        when, level, name, message = (value for _, value in fields[:4])
        return f"{when} {level.upper()} {name}: {message}{''.join(extras)}{error}"


FORMATTERS: dict[str, type[logging.Formatter]] = {
    "text": TextFormatter,
    "json": JsonFormatter,
    "logfmt": LogfmtFormatter,
}


def setup_logging(level: str, log_format: str = "text", stream: TextIO | None = None) -> None:
    """Send every logger's records to stderr (or `stream`), one line each, in `log_format`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(FORMATTERS[log_format]())
    handler.addFilter(RequestIdField())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
