"""The spawn storm's real cluster: a real kube-apiserver and a simulated node.

`realkube all` (tests/realkube: kube-apiserver with its etcd, the
controller-manager and the scheduler, built from Kubernetes' own modules)
plays the API server and the control loops; `podgate sim --node-only` is the
only simulated part, the kubelet of one roomy node that serves the storm's
echo pods. Both are separate processes, so their CPU is read apart from
podgate's. Every wait is bounded in time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.harness import procs

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_READY_SECONDS = 60.0

# The test kit that builds (a no-op once cached) and starts `realkube all`.
sys.path.insert(0, str(REPO_ROOT / "tests" / "realkube"))
from realkube_kit import RealKube, build_realkube, start_realkube  # noqa: E402


@dataclass
class RealCluster:
    """A running real control plane and its node agent."""

    kube: RealKube
    agent: procs.Managed

    @property
    def kubeconfig(self) -> Path:
        return self.kube.kubeconfig

    @property
    def pids(self) -> tuple[int, ...]:
        return (self.kube.process.pid, self.agent.pid)

    def stop(self) -> None:
        # The agent first: it ends its pods' processes while the API still answers.
        self.agent.stop(grace=30)
        self.kube.stop()


def start_real_cluster(
    workdir: Path, podgate_cmd: list[str], cpus: str | None, env: Mapping[str, str]
) -> RealCluster:
    """realkube and the node agent, returned once the node is Ready for pods."""
    kube = start_realkube(build_realkube(), workdir / "realkube")
    try:
        _pin(kube.process.pid, cpus)
        agent = procs.start(
            "node-agent",
            [*podgate_cmd, "sim", "--node-only", "--kubeconfig", str(kube.kubeconfig),
             "--data-dir", str(workdir / "node")],
            log_dir=workdir,
            cpus=cpus,
            env=dict(env),
            cwd=REPO_ROOT,
        )  # fmt: skip
    except BaseException:
        kube.stop()
        raise
    cluster = RealCluster(kube, agent)
    try:
        _wait_node_ready(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _pin(pid: int, cpus: str | None) -> None:
    """Every thread of an already running process onto `cpus` (Go starts many)."""
    if cpus:
        subprocess.run(["taskset", "-a", "-cp", cpus, str(pid)], capture_output=True, check=False)


def _wait_node_ready(cluster: RealCluster) -> None:
    deadline = time.monotonic() + NODE_READY_SECONDS
    while time.monotonic() < deadline:
        if not cluster.agent.alive():
            raise RuntimeError(f"the node agent exited: {cluster.agent.log_tail()}")
        status, body = cluster.kube.get("/api/v1/nodes")
        if status == 200 and any(_ready(node) for node in json.loads(body)["items"]):
            return
        time.sleep(0.2)
    raise RuntimeError(f"no node turned Ready in {NODE_READY_SECONDS:.0f} s: "
                       f"{cluster.agent.log_tail()}")  # fmt: skip


def _ready(node: Mapping[str, object]) -> bool:
    conditions = node.get("status", {}).get("conditions", [])  # type: ignore[union-attr]
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
