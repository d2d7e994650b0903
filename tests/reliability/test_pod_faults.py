"""Pod faults with no middlebox: a pod refusing, a pod process killed mid-WebSocket, a route
removed while a request is in flight. podgate is assembled from a config file, both modes.

The user sees 503 for a pod that refuses, a WebSocket close when the pod
dies, and after the route is gone the spawn page (control) or 404 (proxy-
only) instead of a dead address; everyone else keeps being served.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from reliability_kit import (
    Gate,
    ProcessPod,
    open_fds,
    podgate_config,
    start_pod,
    start_podgate,
    start_process_pod,
    stop_process,
)

from podgate.assembly import Podgate
from routes import RouteSource


def free_loopback_url() -> str:
    """A 127.0.0.1 URL where nothing listens: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=10)
    ) as session:
        yield session


async def test_refusing_pod_is_503_and_others_are_served(
    gate: Gate, client: aiohttp.ClientSession
) -> None:
    gate.podgate.table.add(
        "/user/carol", free_loopback_url(), source=RouteSource.CONFIG, user="carol"
    )
    headers = {"Cookie": gate.cookie("carol")}
    for _ in range(5):
        async with client.get(f"{gate.url}/user/carol/lab", headers=headers) as response:
            assert response.status == 503
            assert "not running" in await response.text()
    assert gate.podgate.stats.upstream_errors["refused"] == 5
    async with client.get(f"{gate.url}/user/bob/x", headers={"Cookie": gate.cookie("bob")}) as r:
        assert (r.status, r.headers["X-Pod"]) == (200, "bob")


@pytest.fixture
async def process_pod_gate(tmp_path: Path) -> AsyncIterator[tuple[Podgate, ProcessPod]]:
    """control-mode podgate with alice's pod as a process we can kill, bob's in-process."""
    bob = await start_pod("bob")
    alice = start_process_pod("alice")
    routes = [
        {"path": "/user/alice", "target": alice.url, "user": "alice"},
        {"path": "/user/bob", "target": bob.url, "user": "bob"},
    ]
    podgate = await start_podgate(podgate_config(tmp_path, control=True, routes=routes))
    try:
        yield podgate, alice
    finally:
        await podgate.stop()
        stop_process(alice.process)
        await bob.server.close()


async def test_pod_killed_mid_websocket_closes_the_client(
    process_pod_gate: tuple[Podgate, ProcessPod], client: aiohttp.ClientSession
) -> None:
    podgate, alice = process_pod_gate
    cookie = {"Cookie": f"podgate-session={podgate.sessions.issue('alice')}"}
    async with client.ws_connect(f"{podgate.public_url}/user/alice/ws", headers=cookie) as ws:
        await ws.send_str("hi")
        assert (await asyncio.wait_for(ws.receive(), 5)).data == "alice:hi"
        assert podgate.stats.websockets_active == 1
        alice.process.send_signal(signal.SIGKILL)
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
    for _ in range(50):
        if podgate.stats.websockets_active == 0:
            break
        await asyncio.sleep(0.02)
    assert podgate.stats.websockets_active == 0
    # The dead pod is now refused (503); bob's server is untouched.
    async with client.get(f"{podgate.public_url}/user/alice/x", headers=cookie) as response:
        assert response.status == 503
    bob_cookie = {"Cookie": f"podgate-session={podgate.sessions.issue('bob')}"}
    async with client.ws_connect(f"{podgate.public_url}/user/bob/ws", headers=bob_cookie) as ws:
        await ws.send_str("hello")
        assert (await asyncio.wait_for(ws.receive(), 5)).data == "bob:hello"


async def test_route_removed_while_a_request_is_in_flight(
    gate: Gate, client: aiohttp.ClientSession
) -> None:
    headers = {"Cookie": gate.cookie("alice")}

    async def slow() -> tuple[int, str]:
        async with client.get(f"{gate.url}/user/alice/slow?sleep=0.5", headers=headers) as r:
            return r.status, r.headers.get("X-Pod", "")

    in_flight = asyncio.create_task(slow())
    for _ in range(100):  # wait until the pod has the request
        if gate.alice.log.requests:
            break
        await asyncio.sleep(0.01)
    assert gate.alice.log.requests, "the slow request never reached alice's pod"
    gate.podgate.table.remove("/user/alice")  # the pod was evicted: its route goes
    assert await asyncio.wait_for(in_flight, 5) == (200, "alice")  # finishes as it started

    async with client.get(
        f"{gate.url}/user/alice/next", headers=headers, allow_redirects=False
    ) as response:
        if gate.mode == "control":
            assert response.status == 302
            assert response.headers["Location"].startswith("/hub/spawn/alice?next=")
        else:
            assert response.status == 404
    assert len(gate.alice.log.requests) == 1  # nothing more went to the old address
    async with client.get(f"{gate.url}/user/bob/x", headers={"Cookie": gate.cookie("bob")}) as r:
        assert r.status == 200


async def test_podgate_survives_many_refusals_without_leaking(tmp_path: Path) -> None:
    """A burst against a dead pod: all 503, then the healthy route still answers at once."""
    healthy = await start_pod("healthy")
    routes = [
        {"path": "/dead", "target": free_loopback_url()},
        {"path": "/ok", "target": healthy.url},
    ]
    podgate = await start_podgate(podgate_config(tmp_path, control=False, routes=routes))
    try:

        async def wave(count: int) -> list[int]:
            async with aiohttp.ClientSession() as session:

                async def status(path: str) -> int:
                    async with session.get(f"{podgate.public_url}{path}") as response:
                        await response.read()
                        return response.status

                results = await asyncio.gather(*(status("/dead/x") for _ in range(count)))
                assert await status("/ok/x") == 200
            await asyncio.sleep(0.2)  # the edge sees the client's sockets close
            return results

        assert await wave(1) == [503]
        baseline = open_fds()
        assert await wave(50) == [503] * 50
        assert open_fds() <= baseline + 5, (baseline, open_fds())
        assert podgate.stats.upstream_errors["refused"] == 51
    finally:
        await podgate.stop()
        await healthy.server.close()
