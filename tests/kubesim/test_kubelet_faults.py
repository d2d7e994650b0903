"""Pausing the simulated kubelet over HTTP (/kubesim/faults): no progress, then progress.

A paused kubelet neither schedules, starts nor deletes; the API server keeps
answering. Unpausing lets everything that waited move on.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

PY = sys.executable
IDLE = "import os,time; print('pid', os.getpid(), flush=True); time.sleep(60)"


def sleeper() -> dict[str, Any]:
    return {"name": "main", "image": "x", "command": [PY, "-c", IDLE]}


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_paused_kubelet_makes_no_progress_until_unpaused(sim: Any) -> None:
    await sim.create("running", sleeper(), terminationGracePeriodSeconds=1)
    await sim.until("running", is_ready)
    (pid,) = await sim.pids("running")

    shown = await sim.set_faults({"kubelet_paused": True})
    assert shown["kubelet_paused"] is True
    await sim.create("later", sleeper())
    deleting = await sim.delete("running")
    await asyncio.sleep(0.5)
    later = await sim.core.read_namespaced_pod("later", "default")
    assert later.status.phase == "Pending"
    assert later.status.pod_ip is None and later.spec.node_name is None
    assert await sim.events("later") == []
    still = await sim.core.read_namespaced_pod("running", "default")
    assert still.metadata.deletion_timestamp is not None and alive(pid)
    assert "Killing" not in await sim.reasons("running")

    shown = await sim.set_faults({"kubelet_paused": False})
    assert shown["kubelet_paused"] is False
    await sim.until("later", is_ready)
    await sim.until_deleted("running", deleting.metadata.resource_version)
    assert not alive(pid)


async def test_reset_unpauses_the_kubelet(sim: Any) -> None:
    await sim.set_faults({"kubelet_paused": True})
    await sim.create("waiting", sleeper())
    await asyncio.sleep(0.2)
    assert (await sim.core.read_namespaced_pod("waiting", "default")).status.pod_ip is None
    shown = await sim.set_faults({"reset": True})
    assert shown["kubelet_paused"] is False
    await sim.until("waiting", is_ready)
