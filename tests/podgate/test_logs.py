"""Structured logs: what a real podgate process writes on stderr, in each log_format.

Every line is one record with time, level, logger and message; records about
a request name its id (the one the browser got back as X-Request-Id); JSON
lines stay valid JSON even for tracebacks; log_level drops what is below it.
"""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from podgate.logs import JsonFormatter, LogfmtFormatter, setup_logging
from tests.integration.jupyter_kit import start_podgate_process

TO_AIOHTTP = {"X-Pad-1": "a" * 5000, "X-Pad-2": "b" * 5000}
_LOGFMT_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')
_TEXT_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: .*"
)


def parse_logfmt(line: str) -> dict[str, str]:
    pairs = _LOGFMT_PAIR.findall(line)
    assert " ".join(f"{k}={v}" for k, v in pairs) == line, f"not logfmt: {line!r}"
    return {key: json.loads(value) if value.startswith('"') else value for key, value in pairs}


def refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
async def pod_url() -> AsyncIterator[str]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def run_podgate(
    tmp_path: Path, pod_url: str, settings: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """Serve one good and two failing requests, stop; (stderr lines, failed requests' ids)."""
    config = {
        "listen": "127.0.0.1:0",
        "ops_listen": "127.0.0.1:0",
        "control": {"enabled": False},
        "routes": [{"path": "/", "target": pod_url}, {"path": "/down", "target": refused_url()}],
        **settings,
    }
    process = await start_podgate_process(config, tmp_path)
    failed = []
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{process.public}/fine") as response:
                assert response.status == 200
            for headers in ({}, TO_AIOHTTP):
                async with client.get(f"{process.public}/down/x", headers=headers) as response:
                    assert response.status == 503
                    failed.append(response.headers["X-Request-Id"])
        assert await process.signal_and_wait(signal.SIGTERM, 10) == 0
    finally:
        await process.end()
    return process.log.read_text().splitlines(), failed


async def test_json_logs_are_one_object_per_line_naming_the_request(tmp_path, pod_url) -> None:
    lines, failed = await run_podgate(tmp_path, pod_url, {"log_format": "json"})
    records = [json.loads(line) for line in lines]  # every line, not just some
    assert records
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]{8}\.\d{3}Z", record["time"])
    for request_id in failed:
        about = [r for r in records if r.get("request_id") == request_id]
        assert about, f"no record for {request_id}"
        assert about[0]["level"] == "info" and "upstream refused" in about[0]["message"]
    assert any(r["message"] == "stopped" and "drain_seconds" in r for r in records)


async def test_logfmt_logs_are_key_value_lines(tmp_path, pod_url) -> None:
    lines, failed = await run_podgate(tmp_path, pod_url, {"log_format": "logfmt"})
    records = [parse_logfmt(line) for line in lines]
    assert all(list(r)[:4] == ["time", "level", "logger", "message"] for r in records)
    for request_id in failed:
        assert any(r.get("request_id") == request_id for r in records)


async def test_text_is_the_default_and_log_level_drops_lower_records(tmp_path, pod_url) -> None:
    lines, failed = await run_podgate(tmp_path, pod_url, {"log_level": "warning"})
    assert any("WARNING podgate: no cookie secret" in line for line in lines), lines
    assert all(_TEXT_LINE.fullmatch(line) for line in lines), lines
    assert not any(" INFO " in line for line in lines)
    assert not any(request_id in line for line in lines for request_id in failed)


def _format_one(formatter: logging.Formatter, **extra: Any) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("podgate.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            logger.exception("it broke\non two lines", extra=extra)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


def test_a_traceback_stays_inside_one_json_line() -> None:
    output = _format_one(JsonFormatter(), user="alice", status=502)
    assert output.count("\n") == 1
    record = json.loads(output)
    assert record["level"] == "error"
    assert record["message"] == "it broke\non two lines"
    assert (record["user"], record["status"]) == ("alice", 502)
    assert record["error"].startswith("Traceback") and "ValueError: bad" in record["error"]


def test_a_traceback_stays_inside_one_logfmt_line() -> None:
    output = _format_one(LogfmtFormatter(), pod="jupyter-alice")
    assert output.count("\n") == 1
    record = parse_logfmt(output.rstrip("\n"))
    assert record["pod"] == "jupyter-alice"
    assert "ValueError: bad\nthing" in record["error"]


def test_setup_logging_replaces_earlier_handlers() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        setup_logging("info", "json", stream)
        setup_logging("info", "json", stream)
        logging.getLogger("podgate").info("once")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["once"]
