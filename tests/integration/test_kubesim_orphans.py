"""A kubesim killed with SIGKILL leaves its pods' processes running; the next one ends them.

kubesim's API lives in memory, so after a SIGKILL its pods are gone from the
API while their processes (a user's JupyterLab in the local default) run on
as orphans. A kubesim started afterwards on the same state dir ends them, as
a real kubelet kills the containers of pods its API no longer has, and
removes the dead one's scratch data dir. A kubesim still running on the same
state dir keeps its pods. All real processes: `podgate sim`, pods that
print their pid and HOME, /proc to see who is alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from jupyter_kit import KubeRest, KubesimProcess, eventually, start_kubesim_process

NAMESPACE = "orphans"
# Says where it runs, then waits.
PROGRAM = (
    "import os,time\n"
    "print('pid', os.getpid(), 'home', os.environ['HOME'], flush=True)\n"
    "time.sleep(600)\n"
)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def run_pod(sim: KubesimProcess, name: str) -> tuple[int, Path]:
    """Create a pod in `sim` that runs PROGRAM; its (pid, HOME) once it printed them."""
    rest = KubeRest(sim.url, sim.token)
    try:
        namespace = {"metadata": {"name": NAMESPACE}}
        status, body = await rest.call("POST", "/api/v1/namespaces", namespace)
        assert status in (201, 409), body
        pod = {
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "x",
                                     "command": [sys.executable, "-c", PROGRAM]}]},
        }  # fmt: skip
        status, body = await rest.call("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod)
        assert status == 201, body
        seen: list[str] = []

        async def printed() -> bool:
            status, text = await rest.log(NAMESPACE, name)
            seen[:] = text.split()
            return status == 200 and len(seen) >= 4 and seen[0] == "pid"

        await eventually(printed, 30, f"pod {name} printed its pid")
        return int(seen[1]), Path(seen[3])
    finally:
        await rest.close()


async def test_a_kubesim_started_after_a_sigkill_ends_the_orphans_and_spares_live_pods(
    tmp_path: Path,
) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    workdirs = [tmp_path / name for name in ("live", "killed", "next")]
    for workdir in workdirs:
        workdir.mkdir()
    sims: list[KubesimProcess] = []
    pids: list[int] = []
    try:
        live = await start_kubesim_process(workdirs[0], env=env)
        sims.append(live)
        live_pid, _ = await run_pod(live, "stays")
        pids.append(live_pid)

        killed = await start_kubesim_process(workdirs[1], env=env)
        sims.append(killed)
        orphan, home = await run_pod(killed, "orphan")
        pids.append(orphan)
        scratch = home.parents[2]  # <data dir>/pods/<uid>/home
        assert await killed.signal_and_wait(signal.SIGKILL, 10) == -signal.SIGKILL
        # What the issue saw: the pod's process outlives its kubesim.
        assert alive(orphan) and scratch.is_dir()

        following = await start_kubesim_process(workdirs[2], env=env)
        sims.append(following)

        async def orphan_gone() -> bool:
            return not alive(orphan)

        await eventually(orphan_gone, 15, "the orphan ended by the next kubesim")
        assert not scratch.exists(), "the killed kubesim's scratch data dir is removed"
        assert "left running by a kubelet that was killed" in following.log.read_text()
        # The kubesim that still runs keeps its pod.
        assert alive(live_pid)
    finally:
        for sim in sims:
            await sim.end()
        for pid in pids:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
