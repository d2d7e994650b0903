"""The built-in idle culler: stops idle (or too old) servers only, and survives API faults.

Real podgates with echo pods; traffic is signed-in browsers' requests and
WebSockets through the edge. Rounds every 0.2 s, timeouts of seconds. On both
API servers, but for the tests that inject API latency and errors (kubesim_only).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from hub_kit import Browser, podgate_config
from kube_servers import PodgateCluster

from podgate.assembly import Podgate
from podgate.schema import ConfigError

MakePodgate = Callable[..., Awaitable[Podgate]]
FaultSetter = Callable[..., Awaitable[dict[str, Any]]]

pytestmark = pytest.mark.both_servers

TIMEOUT = 3.0  # idle seconds before a cull; the edge bumps WebSocket activity once a second


def _culler(**settings: Any) -> dict[str, Any]:
    return {"culler": {"enabled": True, "timeout": TIMEOUT, "every": 0.2, **settings}}


def _state(pg: Podgate, user: str) -> str:
    assert pg.control is not None and pg.control.spawner is not None
    return pg.control.spawner.status(user).state


def _culled_reasons(pg: Podgate) -> list[str]:
    """Route the culler's observer (the metrics hook) into a list the test reads."""
    assert pg.control is not None and pg.control.culler is not None
    reasons: list[str] = []
    pg.control.culler.observer = reasons.append
    return reasons


async def _until(check: Callable[[], bool], seconds: float = 15.0) -> None:
    async with asyncio.timeout(seconds):
        while True:
            if check():
                return
            await asyncio.sleep(0.05)


async def _running(pg: Podgate, *users: str) -> list[Browser]:
    """A signed-in browser per user, each with a running, routed server."""
    browsers = [Browser(pg.public_url) for _ in users]
    for browser, user in zip(browsers, users, strict=True):
        events = await browser.start_server(user)
        assert events[-1].get("ready"), events
    await _until(lambda: all(pg.table.get(f"/user/{u}") is not None for u in users))
    return browsers


async def _close(browsers: list[Browser]) -> None:
    for browser in browsers:
        await browser.close()


async def test_idle_servers_stop_and_used_ones_stay(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(_culler())
    reasons = _culled_reasons(pg)
    ada, bob, cy, dee = browsers = await _running(pg, "ada", "bob", "cy", "dee")
    try:
        timeout = aiohttp.ClientWSTimeout(ws_close=5)
        async with (
            cy.session.ws_connect(cy.url("/user/cy/ws"), timeout=timeout) as chatty,
            dee.session.ws_connect(dee.url("/user/dee/ws"), timeout=timeout) as quiet,
        ):
            # dee's socket stays open but silent; cy's sends a frame each second.
            await quiet.send_str("hello, then nothing")
            assert (await quiet.receive(timeout=5)).data == "hello, then nothing"
            idle = ("ada", "dee")
            # Until the idle ones are culled, then well past the timeout for the others.
            deadline = time.monotonic() + 3 * TIMEOUT
            after_culls = 2  # frames (seconds) to go on once ada and dee are gone
            while after_culls > 0 and time.monotonic() < deadline:
                await chatty.send_str("typing")
                assert (await chatty.receive(timeout=5)).data == "typing"
                assert (await bob.get("/user/bob/api/status")).status == 200
                await asyncio.sleep(1.0)
                if all(_state(pg, user) != "running" for user in idle):
                    after_culls -= 1
            states = {user: _state(pg, user) for user in ("ada", "bob", "cy", "dee")}
            assert states["bob"] == "running" and states["cy"] == "running", states
            assert states["ada"] in ("stopping", "stopped"), states
            assert states["dee"] in ("stopping", "stopped"), states
            # The silent socket does not outlive its server.
            closing = await quiet.receive(timeout=10)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert sorted(reasons) == ["idle", "idle"]
        # ada comes back to a spawn page, not her server.
        await _until(lambda: pg.table.get("/user/ada") is None)
        response = await ada.get("/user/ada/lab", allow_redirects=False)
        assert response.status == 302
        assert "/hub/spawn/ada" in response.headers["Location"]
    finally:
        await _close(browsers)


async def test_max_age_stops_even_a_busy_server(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(_culler(timeout=600, max_age=2.0))
    reasons = _culled_reasons(pg)
    browsers = await _running(pg, "ada")
    try:
        async with asyncio.timeout(15):
            while _state(pg, "ada") == "running":
                await browsers[0].get("/user/ada/api/status")
                await asyncio.sleep(0.2)
        assert reasons == ["max_age"]
    finally:
        await _close(browsers)


async def test_admins_can_be_left_out(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(
        {**_culler(timeout=1.5, cull_admin_users=False), "auth": {"admins": ["root"]}}
    )
    browsers = await _running(pg, "root", "ada")
    try:
        await _until(lambda: _state(pg, "ada") != "running")
        await asyncio.sleep(1.0)  # both idle alike: root's would have gone by now too
        assert _state(pg, "root") == "running"
    finally:
        await _close(browsers)


async def test_a_starting_server_is_never_culled(
    make_podgate: MakePodgate, podgate_cluster: PodgateCluster
) -> None:
    pg = await make_podgate(_culler(timeout=0.3))
    assert pg.control is not None and pg.control.spawner is not None
    podgate_cluster.set_paused(pg, True)
    try:
        await pg.control.spawner.start("ada")
        await asyncio.sleep(1.5)  # five times the timeout, seven rounds
        assert _state(pg, "ada") == "starting"
        assert pg.control.kube is not None
        pod = await pg.control.kube.get("pods", "podgate", "jupyter-ada")
        assert not pod["metadata"].get("deletionTimestamp")
    finally:
        podgate_cluster.set_paused(pg, False)
        await pg.control.spawner.stop("ada")


@pytest.mark.kubesim_only
async def test_stops_run_at_most_concurrency_at_a_time(
    make_podgate: MakePodgate, set_faults: FaultSetter
) -> None:
    # No rounds of its own during the test (every: 600): the test runs one.
    pg = await make_podgate(_culler(timeout=0.5, every=600, concurrency=2))
    assert pg.cluster is not None and pg.control is not None and pg.control.culler is not None
    users = ("u1", "u2", "u3", "u4")
    browsers = await _running(pg, *users)
    try:
        await asyncio.sleep(0.6)
        delay = 0.4
        await set_faults(pg.cluster, {"latency_ms": delay * 1000})
        try:
            began = time.monotonic()
            culled = await pg.control.culler.cull_round()
            took = time.monotonic() - began
        finally:
            await set_faults(pg.cluster, {"reset": True})
        assert sorted(c.user for c in culled) == list(users)
        # Four deletes two at a time: two waves of the API's latency, not one.
        assert took >= 2 * delay, took
    finally:
        await _close(browsers)


@pytest.mark.kubesim_only
async def test_api_faults_stop_nothing_wrongly_and_the_culler_carries_on(
    make_podgate: MakePodgate, set_faults: FaultSetter
) -> None:
    pg = await make_podgate(_culler(timeout=1.5))
    assert pg.cluster is not None
    reasons = _culled_reasons(pg)
    _, bob = browsers = await _running(pg, "ada", "bob")
    try:
        await set_faults(pg.cluster, {"errors": {"delete": {"code": 500}}})
        try:
            deadline = time.monotonic() + 3.0  # twice the timeout
            while time.monotonic() < deadline:
                assert (await bob.get("/user/bob/api/status")).status == 200
                await asyncio.sleep(0.3)
            # ada's stops are refused round after round: she still runs, bob too.
            assert _state(pg, "ada") == "running"
            assert _state(pg, "bob") == "running"
            assert reasons == []
        finally:
            await set_faults(pg.cluster, {"reset": True})
        # The same culler, still running, gets ada on a later round; bob stays.
        async with asyncio.timeout(10):
            while _state(pg, "ada") == "running":
                assert (await bob.get("/user/bob/api/status")).status == 200
                await asyncio.sleep(0.3)
        assert _state(pg, "bob") == "running"
        assert reasons == ["idle"]
    finally:
        await _close(browsers)


def test_bad_culler_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"culler: timeout"):
        podgate_config({"culler": {"timeout": 0}})
    with pytest.raises(ConfigError, match=r"culler: concurrency"):
        podgate_config({"culler": {"concurrency": 0}})
    with pytest.raises(ConfigError, match=r"culler\.cull_admins"):
        podgate_config({"culler": {"cull_admins": False}})
