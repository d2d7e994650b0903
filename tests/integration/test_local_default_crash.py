"""The local default after a crash: `podgate run` SIGKILLed, then started again.

podgate runs with its embedded kubesim, and a user's server is started
through /hub/api. A SIGKILL leaves that server's process running with nothing
to reach it (the simulated API lived in podgate's memory); the next `podgate
run` of the same user (same state dir) ends it at start, as a real kubelet
ends containers of pods its API no longer has. Real processes throughout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from jupyter_kit import PodgateProcess, children_of, eventually, start_podgate_process

ADMIN_TOKEN = "crash-admin-token-0123456789"


def config(marker: str) -> dict[str, Any]:
    # A server that only waits; its command line carries the marker the test looks for.
    program = f"import time  # {marker}\ntime.sleep(600)\n"
    return {
        "listen": "127.0.0.1:0",
        "ops_listen": "127.0.0.1:0",
        "auth": {"kind": "dummy", "password": "crash-password"},
        "api_tokens": [{"name": "setup", "token": ADMIN_TOKEN, "scopes": ["admin"]}],
        "spawner": {
            "image": "sleeper",
            "cmd": [sys.executable, "-c", program],
            "jupyter_args": False,
            "readiness_path": None,
        },
    }


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def start_server(podgate: PodgateProcess, user: str) -> None:
    api = podgate.ops + "/hub/api"
    headers = {"Authorization": f"token {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{api}/users/{user}") as made:
            assert made.status == 201, await made.text()
        async with session.post(f"{api}/users/{user}/server") as started:
            assert started.status in (201, 202), await started.text()


async def server_pid(podgate: PodgateProcess, marker: str) -> int:
    """The pid of the user's server: the embedded kubelet's child running the marker."""
    found: list[int] = []

    async def started() -> bool:
        found[:] = [p.pid for p in children_of(podgate.pid) if marker in p.cmdline]
        return bool(found)

    await eventually(started, 30, "the user's server process started")
    return found[0]


async def test_a_podgate_started_after_a_sigkill_ends_the_servers_the_killed_one_left(
    tmp_path: Path,
) -> None:
    marker = f"crash-{uuid.uuid4().hex}"
    env: Mapping[str, str] = {"XDG_STATE_HOME": str(tmp_path / "state")}
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    pids: list[int] = []
    first = await start_podgate_process(config(marker), first_dir, env=env)
    try:
        await start_server(first, "ada")
        pids.append(await server_pid(first, marker))
        assert await first.signal_and_wait(signal.SIGKILL, 10) == -signal.SIGKILL
        assert alive(pids[0]), "what the issue saw: the server outlives podgate"

        second = await start_podgate_process(config(marker), second_dir, env=env)
        try:

            async def orphan_gone() -> bool:
                return not alive(pids[0])

            await eventually(orphan_gone, 20, "the killed podgate's server ended")
            log = second.log.read_text(errors="replace")
            assert "left running by a kubelet that was killed" in log
        finally:
            await second.end()
    finally:
        await first.end()
        for pid in pids:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
