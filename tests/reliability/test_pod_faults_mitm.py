"""Pod faults injected by a real middlebox: mitmdump (faults_addon.py) between podgate and a pod.

alice's pod is a process behind mitmdump in reverse-proxy mode; bob's pod is
direct. The addon adds latency, resets connections before and during a
response, truncates bodies under a promised Content-Length, stalls past the
edge's read timeout, drops WebSocket messages and kills WebSocket flows. The
user must see a status that says what happened (503, 504) or a broken
connection, never a complete-looking truncated body; bob keeps being served;
no connection or task is left behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from reliability_kit import (
    Middlebox,
    RecordingPod,
    open_fds,
    podgate_config,
    start_pod,
    start_podgate,
)

from podgate.assembly import Podgate

READ_TIMEOUT = 1.0  # the edge's upstream read timeout in these tests
BODY = 200_000


@dataclass
class FaultGate:
    podgate: Podgate
    bob: RecordingPod
    client: aiohttp.ClientSession

    def get(self, user: str, path: str) -> aiohttp.client._RequestContextManager:
        cookie = f"podgate-session={self.podgate.sessions.issue(user)}"
        return self.client.get(
            f"{self.podgate.public_url}/user/{user}{path}", headers={"Cookie": cookie}
        )

    async def bob_still_served(self) -> None:
        async with self.get("bob", "/still") as response:
            assert response.status == 200
            assert response.headers["X-Pod"] == "bob"


@pytest.fixture
async def fault_gate(alice_behind_mitmproxy: Middlebox, tmp_path: Path) -> AsyncIterator[FaultGate]:
    bob = await start_pod("bob")
    routes = [
        {"path": "/user/alice", "target": alice_behind_mitmproxy.url, "user": "alice"},
        {"path": "/user/bob", "target": bob.url, "user": "bob"},
    ]
    config = podgate_config(tmp_path, control=True, routes=routes, upstream_timeout=READ_TIMEOUT)
    podgate = await start_podgate(config)
    try:
        async with aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=10)
        ) as client:
            yield FaultGate(podgate, bob, client)
    finally:
        await podgate.stop()
        await bob.server.close()


async def test_latency_is_passed_through_whole(fault_gate: FaultGate) -> None:
    started = time.monotonic()
    async with fault_gate.get("alice", f"/slowish?fault=latency&ms=300&size={BODY}") as response:
        body = await response.read()
    assert response.status == 200
    assert len(body) == BODY
    assert time.monotonic() - started >= 0.3


async def test_reset_before_answer_is_503(fault_gate: FaultGate) -> None:
    async with fault_gate.get("alice", "/x?fault=reset") as response:
        assert response.status == 503
        assert "not running" in await response.text()
    assert fault_gate.podgate.stats.upstream_errors["reset"] >= 1
    await fault_gate.bob_still_served()


@pytest.mark.parametrize(
    "query",
    [
        f"fault=reset-mid&size={BODY}",
        f"fault=reset-mid&size={BODY}&chunked=1",
        f"fault=truncate&size={BODY}",
    ],
    ids=["reset-mid-content-length", "reset-mid-chunked", "truncated-content-length"],
)
async def test_broken_body_reaches_the_client_as_broken(fault_gate: FaultGate, query: str) -> None:
    got = b""
    async with fault_gate.get("alice", f"/big?{query}") as response:
        assert response.status == 200  # the head was already out when the pod broke
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in response.content.iter_any():
                got += chunk
    assert len(got) < BODY  # and never a complete-looking short body
    assert sum(fault_gate.podgate.stats.upstream_errors.values()) == 1, (
        fault_gate.podgate.stats.upstream_errors
    )
    await fault_gate.bob_still_served()
    async with fault_gate.get("alice", "/again") as response:
        assert response.status == 200
        assert await response.text() == "alice:/user/alice/again"


async def test_pod_slower_than_read_timeout_is_504(fault_gate: FaultGate) -> None:
    started = time.monotonic()
    bob = asyncio.create_task(fault_gate.bob_still_served())
    async with fault_gate.get("alice", "/slow?fault=stall&s=3") as response:
        assert response.status == 504
        assert "took too long" in await response.text()
    assert READ_TIMEOUT <= time.monotonic() - started < READ_TIMEOUT + 1.5
    await bob  # served meanwhile
    assert fault_gate.podgate.stats.upstream_errors["timeout"] == 1


async def test_repeated_faults_leak_no_connections(fault_gate: FaultGate) -> None:
    async def one_fault() -> None:
        async with fault_gate.get("alice", f"/leak?fault=reset-mid&size={BODY}") as response:
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()

    await one_fault()
    await fault_gate.client.close()  # count the edge's sockets, not the client's pool
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        fault_gate.client = client
        baseline = open_fds()
        for _ in range(20):
            await one_fault()
        await fault_gate.bob_still_served()
        await client.close()
    await asyncio.sleep(0.1)
    assert open_fds() <= baseline + 5, (baseline, open_fds())


async def test_websocket_message_dropped_by_middlebox_is_just_missing(
    fault_gate: FaultGate,
) -> None:
    cookie = f"podgate-session={fault_gate.podgate.sessions.issue('alice')}"
    async with fault_gate.client.ws_connect(
        f"{fault_gate.podgate.public_url}/user/alice/ws", headers={"Cookie": cookie}
    ) as ws:
        await ws.send_str("drop-me please")
        await ws.send_str("hello")
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.data == "alice:hello"  # the dropped one never came back, nothing broke
        await ws.send_str("again")
        assert (await asyncio.wait_for(ws.receive(), 5)).data == "alice:again"


async def test_websocket_killed_by_middlebox_closes_the_client(fault_gate: FaultGate) -> None:
    cookie = f"podgate-session={fault_gate.podgate.sessions.issue('alice')}"
    url = f"{fault_gate.podgate.public_url}/user/alice/ws"
    async with fault_gate.client.ws_connect(url, headers={"Cookie": cookie}) as ws:
        await ws.send_str("hi")
        assert (await asyncio.wait_for(ws.receive(), 5)).data == "alice:hi"
        await ws.send_str("kill-me")
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
    for _ in range(50):  # the relay notices both sides are gone
        if fault_gate.podgate.stats.websockets_active == 0:
            break
        await asyncio.sleep(0.02)
    assert fault_gate.podgate.stats.websockets_active == 0
    async with fault_gate.client.ws_connect(url, headers={"Cookie": cookie}) as ws:
        await ws.send_str("back")
        assert (await asyncio.wait_for(ws.receive(), 5)).data == "alice:back"
    await fault_gate.bob_still_served()
