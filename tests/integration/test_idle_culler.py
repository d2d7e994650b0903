"""The real jupyterhub-idle-culler (from PyPI) against podgate's /hub/api.

Three users' echo servers run; one of them keeps sending requests through
the edge. The culler runs as its own process with a short timeout and an
API token holding only the scopes it needs, and it stops exactly the two
idle servers: the active one is left running. Bounded to ~30 s. On both API
servers (both_servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from hub_kit import Browser

pytest.importorskip("jupyterhub_idle_culler", reason="pip install jupyterhub-idle-culler")

MakePodgate = Callable[..., Awaitable[Any]]

pytestmark = pytest.mark.both_servers

ADMIN_TOKEN = "test-admin-token-0123456789"
CULLER_TOKEN = "test-culler-token-0123456789"
SETTINGS = {
    "api_tokens": [
        {"name": "setup", "token": ADMIN_TOKEN, "scopes": ["admin"]},
        # The scopes the culler's documentation asks for (without culling users).
        {
            "name": "culler",
            "token": CULLER_TOKEN,
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        },
    ]
}
IDLE_TIMEOUT = 4  # seconds: the culler's --timeout
CULL_EVERY = 1
DEADLINE = 30.0


async def _until(check: Callable[[], bool], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        await asyncio.sleep(0.1)
    return check()


async def _start(pg: Any, users: list[str]) -> None:
    headers = {"Authorization": f"token {ADMIN_TOKEN}"}
    api = pg.ops_url + "/hub/api"
    async with aiohttp.ClientSession(headers=headers) as session:
        for user in users:
            async with session.post(f"{api}/users/{user}") as made:
                assert made.status == 201
            async with session.post(f"{api}/users/{user}/server") as started:
                assert started.status in (201, 202)
    running = lambda: all(pg.control.spawner.status(u).state == "running" for u in users)  # noqa: E731
    assert await _until(running, 15.0)


async def _keep_busy(browser: Browser, path: str, stop: asyncio.Event) -> None:
    """Requests through the edge to the user's server every half second, until told to stop."""
    for _ in range(int(DEADLINE / 0.5) + 10):
        response = await browser.get(path)
        assert response.status == 200, response.status
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
        if stop.is_set():
            return


@contextlib.asynccontextmanager
async def _culler(api_url: str) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {
        **os.environ,
        "JUPYTERHUB_API_TOKEN": CULLER_TOKEN,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jupyterhub_idle_culler",
        f"--url={api_url}",
        f"--timeout={IDLE_TIMEOUT}",
        f"--cull-every={CULL_EVERY}",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_the_idle_culler_stops_only_idle_servers(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    await _start(pg, ["ada", "bob", "cyd"])
    stop = asyncio.Event()
    browser = Browser(pg.public_url)
    try:
        assert (await browser.login("cyd")).status == 200
        busy = asyncio.create_task(_keep_busy(browser, "/user/cyd/still-here", stop))
        async with _culler(pg.public_url + "/hub/api") as culler:
            idle_gone = await _until(
                lambda: all(
                    pg.control.spawner.status(u).state == "stopped" for u in ("ada", "bob")
                ),
                DEADLINE - 8,
            )
            # Two more rounds past the timeout: the busy server must still be there.
            await asyncio.sleep(2 * CULL_EVERY + 0.5)
            cyd = pg.control.spawner.status("cyd").state
            still_running = culler.returncode is None
            log = b""
            if not idle_gone:
                culler.terminate()
                log = await culler.stderr.read() if culler.stderr else b""
        stop.set()
        await busy
    finally:
        stop.set()
        await browser.close()
    assert still_running, "the culler exited early"
    assert idle_gone, f"idle servers were not culled: {log.decode()[-2000:]}"
    assert cyd == "running"


async def test_the_idle_culler_stops_an_idle_named_server_and_keeps_a_busy_one(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate({**SETTINGS, "spawner": {"named_server_limit_per_user": 2}})
    headers = {"Authorization": f"token {ADMIN_TOKEN}"}
    api = pg.ops_url + "/hub/api"
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{api}/users/dee") as made:
            assert made.status == 201
        for server in ("idle", "busy"):
            async with session.post(f"{api}/users/dee/servers/{server}") as started:
                assert started.status in (201, 202), await started.text()
    spawner = pg.control.spawner
    both = ("dee/idle", "dee/busy")
    assert await _until(lambda: all(spawner.status(k).state == "running" for k in both), 15.0)
    stop = asyncio.Event()
    browser = Browser(pg.public_url)
    try:
        assert (await browser.login("dee")).status == 200
        busy = asyncio.create_task(_keep_busy(browser, "/user/dee/busy/still-here", stop))
        async with _culler(pg.public_url + "/hub/api") as culler:
            idle_gone = await _until(
                lambda: spawner.status("dee/idle").state == "stopped", DEADLINE - 8
            )
            await asyncio.sleep(2 * CULL_EVERY + 0.5)
            kept = spawner.status("dee/busy").state
            still_running = culler.returncode is None
            log = b""
            if not idle_gone:
                culler.terminate()
                log = await culler.stderr.read() if culler.stderr else b""
        stop.set()
        await busy
    finally:
        stop.set()
        await browser.close()
    assert still_running, "the culler exited early"
    assert idle_gone, log.decode(errors="replace")[-2000:]
    assert kept == "running"
    assert spawner.status("dee").state == "stopped"  # no default server came into it
