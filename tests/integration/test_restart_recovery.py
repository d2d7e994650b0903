"""Killing podgate and starting it again while users are connected loses no route.

The cluster that outlives the ingress pod is kubesim running alone as a
process (`podgate sim`), or the real API server with a node agent
(both_servers); podgate runs against it as a process with `cluster: {kind:
kube}`, a fixed cookie secret and echo pods (which live in kubesim's process
or the agent's, as real pods live on nodes). Users sign in,
get servers and hold WebSockets open while a request loop keeps them busy;
podgate is SIGKILLed under that load and started again on the same address.

What the users notice: their WebSockets drop with the old process; once
the new one has relisted (and only then does /readyz say 200) every
running user is routed again with the cookie they already had, reconnected
WebSockets echo, and a user whose pod was deleted meanwhile is sent to the
spawn page rather than to a dead address. What the cluster shows: the same
pods with the same uids and resourceVersions (nothing was touched), none
added. Failing lists after the restart are kubesim's fault hook: the tests
that need them are kubesim_only, and the first test injects them on kubesim
alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hub_kit import COOKIE_SECRET, ECHO_SPAWNER, PASSWORD, Browser
from jupyter_kit import (
    ClusterAccess,
    KubeRest,
    KubesimProcess,
    PodgateProcess,
    eventually,
    free_port,
    start_podgate_process,
)

from control.manifests import POD_SELECTOR
from control.names import USER_ANNOTATION

NAMESPACE = "podgate"
RUNNING = ("ada", "grace", "linus")  # keep their pods through the restart
DELETED = "edsger"  # their pod is deleted while podgate is down

pytestmark = pytest.mark.both_servers


def podgate_config(kubeconfig: Path, port: int) -> dict[str, Any]:
    return {
        # A fixed address: the users' browsers come back to the same URL.
        "listen": f"127.0.0.1:{port}",
        "ops_listen": "127.0.0.1:0",
        "cluster": {"kind": "kube", "kubeconfig": str(kubeconfig)},
        "auth": {"kind": "dummy", "password": PASSWORD},
        "session": {"cookie_secrets": [COOKIE_SECRET]},
        "spawner": {**ECHO_SPAWNER, "namespace": NAMESPACE},
    }


async def user_pods(kube: KubeRest) -> dict[str, dict[str, str]]:
    """user -> name, uid, resourceVersion of their pod, from a list by label."""
    found: dict[str, dict[str, str]] = {}
    for pod in await kube.pods(NAMESPACE, POD_SELECTOR):
        meta = pod["metadata"]
        user = meta["annotations"][USER_ANNOTATION]
        assert user not in found, f"two pods for {user}"
        found[user] = {
            "name": meta["name"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
        }
    return found


async def echo_over_websocket(browser: Browser, user: str) -> aiohttp.ClientWebSocketResponse:
    """Open the user's WebSocket through podgate and see one message come back."""
    ws = await browser.session.ws_connect(
        browser.url(f"/user/{user}/ws"), timeout=aiohttp.ClientWSTimeout(ws_close=2)
    )
    await ws.send_str(f"hello from {user}")
    reply = await ws.receive(timeout=5)
    assert reply.type == aiohttp.WSMsgType.TEXT and reply.data == f"hello from {user}"
    return ws


async def keep_busy(browser: Browser, user: str, stop: asyncio.Event, seen: Counter[str]) -> None:
    """A user clicking around: requests to their server until told to stop (bounded)."""
    for _ in range(20_000):
        if stop.is_set():
            return
        try:
            async with browser.session.get(
                browser.url(f"/user/{user}/api/contents"),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=2),
            ) as response:
                await response.read()
                seen[str(response.status)] += 1
        except (TimeoutError, aiohttp.ClientError):
            seen["connection error"] += 1
            await asyncio.sleep(0.02)


async def readiness_until_ready(ops: str, seconds: float) -> list[int]:
    """Every /readyz status seen, polling until it says 200."""
    seen: list[int] = []
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as client:
        while time.monotonic() < deadline:
            async with client.get(f"{ops}/readyz") as response:
                seen.append(response.status)
            if seen[-1] == 200:
                return seen
            await asyncio.sleep(0.02)
    raise AssertionError(f"/readyz not 200 within {seconds} s: {seen[-5:]}")


async def test_sigkill_under_load_and_restart_loses_no_route_and_touches_no_pod(
    tmp_path: Path, cluster: ClusterAccess, kube: KubeRest
) -> None:
    config = podgate_config(cluster.kubeconfig, free_port())
    first = await start_podgate_process(config, tmp_path, name="podgate-first")
    second: PodgateProcess | None = None
    browsers = {user: Browser(first.public) for user in (*RUNNING, DELETED)}
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    try:
        for user, browser in browsers.items():
            events = await browser.start_server(user)
            assert events[-1]["ready"] is True, events
        before = await user_pods(kube)
        assert set(before) == {*RUNNING, DELETED}
        for user in RUNNING:
            sockets.append(await echo_over_websocket(browsers[user], user))

        # Under load: every running user keeps requesting while the process dies.
        stop, seen = asyncio.Event(), {user: Counter[str]() for user in RUNNING}
        load = [
            asyncio.create_task(keep_busy(browsers[u], u, stop, seen[u]), name=f"load-{u}")
            for u in RUNNING
        ]
        try:
            await eventually(
                _all_answered(seen), 10, "each user's requests answered before the kill"
            )
            assert await first.signal_and_wait(signal.SIGKILL, 10) == -signal.SIGKILL
            await eventually(_all_refused(seen), 10, "requests fail once the proxy is gone")
        finally:
            stop.set()
            await asyncio.gather(*load)
        for user in RUNNING:
            assert seen[user]["200"] > 0 and seen[user]["connection error"] > 0, seen[user]
            assert set(seen[user]) <= {"200", "connection error"}, seen[user]

        # The proxy is gone, so are the connections through it.
        for ws in sockets:
            frame = await ws.receive(timeout=5)
            assert frame.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ), frame
        # While podgate is down someone deletes one user's pod.
        status, body = await kube.call(
            "DELETE",
            f"/api/v1/namespaces/{NAMESPACE}/pods/{before[DELETED]['name']}",
            gracePeriodSeconds="0",
        )
        assert status == 200, body

        async def deleted_gone() -> bool:
            return DELETED not in await user_pods(kube)

        await eventually(deleted_gone, 10, "the deleted pod removed")
        if not cluster.real:
            # The first lists of the new process fail for a moment: /readyz must wait for one.
            await kube.set_faults({"errors": {"list": {"code": 500, "count": 4}}})

        second = await start_podgate_process(config, tmp_path, name="podgate-second")
        assert second.public == first.public
        readiness = await readiness_until_ready(second.ops, 30)
        assert readiness[-1] == 200, readiness
        if not cluster.real:
            assert readiness[0] == 503, readiness

        # Old cookies, no new login: each running user reaches their own pod.
        for user in RUNNING:
            response = await browsers[user].get(f"/user/{user}/", allow_redirects=False)
            assert response.status == 200, (user, response.status, response.headers)
            assert (await response.json())["pod"] == before[user]["name"]
        for user in RUNNING:
            reconnected = await echo_over_websocket(browsers[user], user)
            await reconnected.close()
        # The deleted pod has no route: its user is offered a new server, not a dead IP.
        gone = await browsers[DELETED].get(f"/user/{DELETED}/tree", allow_redirects=False)
        assert gone.status == 302
        assert gone.headers["Location"].startswith(f"/hub/spawn/{DELETED}?next=")

        after = await user_pods(kube)
        assert after == {user: before[user] for user in RUNNING}
        assert await second.signal_and_wait(signal.SIGTERM, 20) == 0
        assert "Traceback" not in second.log.read_text(errors="replace")
    finally:
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for browser in browsers.values():
            await browser.close()
        if second is not None:
            await second.end()
        await first.end()


def _all_answered(seen: dict[str, Counter[str]]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return all(counts["200"] >= 3 for counts in seen.values())

    return check


def _all_refused(seen: dict[str, Counter[str]]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return all(counts["connection error"] >= 1 for counts in seen.values())

    return check


async def restart_with_lists_failing(
    tmp_path: Path, kubesim: KubesimProcess, kube: KubeRest, browser: Browser
) -> tuple[PodgateProcess, PodgateProcess, dict[str, dict[str, str]]]:
    """ada runs; podgate is SIGKILLed and started again while the API cannot list."""
    config = podgate_config(kubesim.kubeconfig, free_port())
    first = await start_podgate_process(config, tmp_path, name="podgate-first")
    browser.base_url = first.public
    try:
        assert (await browser.start_server("ada"))[-1]["ready"] is True
        before = await user_pods(kube)
        assert await first.signal_and_wait(signal.SIGKILL, 10) == -signal.SIGKILL
        await kube.set_faults({"errors": {"list": {"code": 500}}})
        second = await start_podgate_process(config, tmp_path, name="podgate-second")
    except BaseException:
        await first.end()
        raise
    try:
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"{second.ops}/readyz") as ready,
        ):
            assert ready.status == 503
    except BaseException:
        await second.end()
        await first.end()
        raise
    return first, second, before


@pytest.mark.kubesim_only
async def test_a_user_back_before_the_relist_is_sent_to_spawn_then_lands_in_the_same_pod(
    tmp_path: Path, kubesim: KubesimProcess, kube: KubeRest
) -> None:
    browser = Browser("http://127.0.0.1:1")
    processes: tuple[PodgateProcess, ...] = ()
    try:
        first, second, before = await restart_with_lists_failing(tmp_path, kubesim, kube, browser)
        processes = (first, second)
        # Not routed yet: sent to the spawn page (never an error, never a guess).
        early = await browser.get("/user/ada/tree", allow_redirects=False)
        assert early.status == 302
        assert early.headers["Location"].startswith("/hub/spawn/ada?next=")

        await kube.set_faults({"reset": True})
        await readiness_until_ready(second.ops, 30)
        landed = await browser.get("/user/ada/tree", allow_redirects=False)
        assert landed.status == 200
        assert (await landed.json())["pod"] == before["ada"]["name"]
        assert await user_pods(kube) == before
    finally:
        await browser.close()
        for process in processes:
            await process.end()


@pytest.mark.kubesim_only
async def test_the_spawn_page_answers_promptly_while_the_relist_is_pending(
    tmp_path: Path, kubesim: KubesimProcess, kube: KubeRest
) -> None:
    browser = Browser("http://127.0.0.1:1")
    processes: tuple[PodgateProcess, ...] = ()
    try:
        first, second, _ = await restart_with_lists_failing(tmp_path, kubesim, kube, browser)
        processes = (first, second)
        # Pages within seconds: the Start button, then a clear "try again shortly".
        try:
            async with asyncio.timeout(5):
                page = await browser.start("ada", next_url="/user/ada/tree")
        except TimeoutError:
            pytest.fail("starting ada's server gave no answer within 5 s before the relist")
        assert page.status == 503, page.status
        assert int(page.headers["Retry-After"]) >= 1
        assert "still reading the cluster" in await page.text()
    finally:
        await browser.close()
        for process in processes:
            await process.end()
