"""Readiness checks against real listeners on 127.0.0.1 (port 0)."""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from kubesim.kubelet.probes import ProbeTiming, check_readiness


@pytest.fixture
async def server() -> AsyncIterator[int]:
    async def handle(request: web.Request) -> web.Response:
        status = int(request.query.get("status", "200"))
        assert request.headers["User-Agent"].startswith("kube-probe/")
        return web.Response(status=status, text=request.headers.get("X-Probe", ""))

    app = web.Application()
    app.router.add_get("/health", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_http_probe_passes_on_2xx_and_fails_on_5xx(
    server: int, session: aiohttp.ClientSession
) -> None:
    container = {"ports": [{"name": "http", "containerPort": server}]}
    ok = {
        "httpGet": {
            "path": "/health",
            "port": "http",
            "httpHeaders": [{"name": "X-Probe", "value": "1"}],
        }
    }
    assert await check_readiness(ok, container, "127.0.0.1", {}, session) == (True, "")
    bad = {"httpGet": {"path": "/health?status=503", "port": server}}
    assert await check_readiness(bad, container, "127.0.0.1", {}, session) == (
        False,
        "HTTP probe failed with statuscode: 503",
    )


async def test_http_probe_on_a_closed_port(session: aiohttp.ClientSession) -> None:
    port = free_port()
    probe = {"httpGet": {"path": "/", "port": port}}
    ok, message = await check_readiness(probe, {}, "127.0.0.1", {}, session)
    assert not ok
    assert message.startswith(f'Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}')
    assert "refused" in message


async def test_tcp_probe(server: int, session: aiohttp.ClientSession) -> None:
    assert await check_readiness({"tcpSocket": {"port": server}}, {}, "127.0.0.1", {}, session) == (
        True,
        "",
    )
    port = free_port()
    ok, message = await check_readiness({"tcpSocket": {"port": port}}, {}, "127.0.0.1", {}, session)
    assert not ok and message == f"dial tcp 127.0.0.1:{port}: connect: connection refused"


async def test_exec_probe_uses_the_exit_code(session: aiohttp.ClientSession) -> None:
    passing = {"exec": {"command": [sys.executable, "-c", "pass"]}}
    failing = {"exec": {"command": [sys.executable, "-c", "print('not yet'); raise SystemExit(1)"]}}
    assert await check_readiness(passing, {}, "127.0.0.1", {}, session) == (True, "")
    assert await check_readiness(failing, {}, "127.0.0.1", {}, session) == (False, "not yet")


async def test_unknown_named_port_fails_the_probe(session: aiohttp.ClientSession) -> None:
    ok, message = await check_readiness(
        {"httpGet": {"port": "missing"}}, {"ports": []}, "127.0.0.1", {}, session
    )
    assert not ok and "missing" in message


def test_probe_timing_defaults_follow_kubernetes() -> None:
    assert ProbeTiming.of({}) == ProbeTiming(0.0, 10.0, 1.0, 1, 3)
