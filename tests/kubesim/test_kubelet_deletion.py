"""Pod deletion over HTTP: SIGTERM, SIGKILL after the grace period, then DELETED.

The containers are real processes that print their pid and write a marker
file when SIGTERM arrives, so the tests see the signals themselves, not
just the pod object going away. Also: kubectl delete, and SimCluster.stop()
leaving no process behind (read from pids the pods logged).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiException

PY = sys.executable

# Logs its pid, notes SIGTERM in $MARKER, then exits or (IGNORE=1) keeps running.
TERM_AWARE = (
    "import os,signal,sys,time\n"
    "def on_term(*_):\n"
    "    open(os.environ['MARKER'], 'a').write('TERM\\n')\n"
    "    if os.environ.get('IGNORE') != '1':\n"
    "        sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, on_term)\n"
    "print('pid', os.getpid(), flush=True)\n"
    "for _ in range(600):\n"
    "    time.sleep(0.1)\n"
)


def term_aware(marker: Path, ignore: bool = False) -> dict[str, Any]:
    return {
        "name": "main",
        "image": "x",
        "command": [PY, "-c", TERM_AWARE],
        "env": [
            {"name": "MARKER", "value": str(marker)},
            {"name": "IGNORE", "value": "1" if ignore else "0"},
        ],
    }


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def until_dead(pid: int, within: float = 5.0) -> float:
    """Seconds until pid is gone (bounded)."""
    started = time.monotonic()
    while alive(pid):
        assert time.monotonic() - started < within, f"pid {pid} still alive"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


async def start(sim: Any, name: str, marker: Path, ignore: bool = False, grace: int = 30) -> int:
    await sim.create(name, term_aware(marker, ignore), terminationGracePeriodSeconds=grace)
    await sim.until(name, is_ready)
    (pid,) = await sim.pids(name)
    return pid


async def test_sigterm_ends_a_cooperative_pod_without_waiting_for_grace(
    sim: Any, shared_dir: Path
) -> None:
    marker = shared_dir / "term"
    pid = await start(sim, "polite", marker)
    started = time.monotonic()
    deleting = await sim.delete("polite")  # 30 s grace: it leaves on SIGTERM
    assert deleting.metadata.deletion_timestamp is not None
    assert deleting.metadata.deletion_grace_period_seconds == 30
    gone = await sim.until_deleted("polite", deleting.metadata.resource_version)
    assert time.monotonic() - started < 5
    assert marker.read_text() == "TERM\n"
    assert not alive(pid)
    assert gone.status.phase == "Succeeded"
    assert (await sim.reasons("polite"))[-1] == "Killing"
    with pytest.raises(ApiException) as missing:
        await sim.core.read_namespaced_pod("polite", "default")
    assert missing.value.status == 404


async def test_process_ignoring_sigterm_is_killed_after_the_grace_period(
    sim: Any, shared_dir: Path
) -> None:
    marker = shared_dir / "term"
    pid = await start(sim, "stubborn", marker, ignore=True, grace=1)
    started = time.monotonic()
    deleting = await sim.delete("stubborn")
    # SIGTERM arrived and was ignored: the pod is still terminating.
    await sim.until_log("stubborn", lambda _: marker.exists(), within=2)
    assert alive(pid)
    terminating = await sim.core.read_namespaced_pod("stubborn", "default")
    assert terminating.metadata.deletion_timestamp is not None
    await sim.until_deleted("stubborn", deleting.metadata.resource_version)
    took = time.monotonic() - started
    assert 0.9 <= took < 5, f"deleted after {took:.2f}s with a 1 s grace period"
    assert not alive(pid)
    assert marker.read_text() == "TERM\n"  # one SIGTERM, then SIGKILL


async def test_second_delete_with_a_shorter_grace_period_kills_sooner(
    sim: Any, shared_dir: Path
) -> None:
    pid = await start(sim, "slow-to-die", shared_dir / "term", ignore=True, grace=30)
    await sim.delete("slow-to-die")
    await asyncio.sleep(0.3)
    assert alive(pid)
    started = time.monotonic()
    shorter = await sim.delete("slow-to-die", grace=1)
    await sim.until_deleted("slow-to-die", shorter.metadata.resource_version)
    assert time.monotonic() - started < 5
    assert not alive(pid)


async def test_force_delete_kills_at_once(sim: Any, shared_dir: Path) -> None:
    pid = await start(sim, "forced", shared_dir / "term", ignore=True)
    await sim.delete("forced", grace=0)
    assert await until_dead(pid, within=3) < 3
    with pytest.raises(ApiException) as gone:
        await sim.core.read_namespaced_pod("forced", "default")
    assert gone.value.status == 404


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_kubectl_delete_waits_for_sigkill_of_a_stubborn_pod(
    make_sim: Any, tmp_path: Path, shared_dir: Path
) -> None:
    sim = await make_sim(tls=True)
    marker = shared_dir / "term"
    pid = await start(sim, "stubborn", marker, ignore=True)
    kubeconfig = sim.cluster.write_kubeconfig(tmp_path / "kubectl-config")
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "HOME": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache"),
        "delete", "pod", "stubborn", "--grace-period=1", "--timeout=20s",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert 'pod "stubborn" deleted' in out.decode()
    # kubectl returned once the pod was gone: SIGTERM was ignored, SIGKILL ended it.
    assert marker.read_text() == "TERM\n"
    assert not alive(pid)


async def test_stop_leaves_no_process_behind(make_sim: Any, shared_dir: Path) -> None:
    sim = await make_sim()
    # A container that starts a grandchild (as a shell would) and one ignoring SIGTERM.
    family = (
        "import os,subprocess,sys,time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('pid', os.getpid(), flush=True)\n"
        "print('pid', child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    await sim.create("family", {"name": "main", "image": "x", "command": [PY, "-c", family]})
    await sim.create("stubborn", term_aware(shared_dir / "term", ignore=True))
    pids = await sim.pids("family", count=2) + await sim.pids("stubborn")
    assert len(pids) == 3 and all(alive(pid) for pid in pids)
    await sim.cluster.stop()
    assert not [pid for pid in pids if alive(pid)]
