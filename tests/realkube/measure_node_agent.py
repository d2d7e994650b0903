"""Figures of the node agent on the real control plane, for kubesim/README.md.

Run from the repository root: `python3 tests/realkube/measure_node_agent.py`.
It starts `realkube all` and `podgate sim --node-only` in a temporary
directory, then measures: agent start -> its Ready line (and the Node Ready
as kubectl sees it), kubectl apply -> pod Ready (median of 5), a 40-replica
Deployment's rollout, and the agent's RSS with those 40 pods. Everything it
starts is stopped at the end.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from node_agent_kit import remove_agent_traces, start_agent
from realkube_kit import build_realkube, run_kubectl, start_realkube

REPLICAS = 40


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="kubesim-measure-"))
    work.chmod(0o711)
    kube = start_realkube(build_realkube(), work / "realkube")
    config = kube.kubeconfig
    try:
        agent = start_agent(config, "kubesim-node", work / "data")
        try:
            print(f"agent start -> Ready line: {agent.seconds_to_ready:.2f} s")
            run_kubectl(config, "create", "namespace", "measure")
            deadline = time.monotonic() + 60
            while run_kubectl(config, "get", "sa", "default", "-n", "measure", ok=False)[0]:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            times = [apply_until_ready(config, f"one-{i}") for i in range(5)]
            print(f"kubectl apply -> pod Ready: median {statistics.median(times):.2f} s "
                  f"(min {min(times):.2f}, max {max(times):.2f}, n=5)")  # fmt: skip
            print(f"agent RSS idle with 5 pods: {agent.rss_bytes() / 2**20:.0f} MiB")
            run_kubectl(config, "delete", "pods", "--all", "-n", "measure")
            rollout = deployment_rollout(config)
            print(f"{REPLICAS}-replica Deployment apply -> rollout complete: {rollout:.1f} s")
            print(f"agent RSS with {REPLICAS} pods: {agent.rss_bytes() / 2**20:.0f} MiB")
            run_kubectl(config, "delete", "namespace", "measure", "--timeout=120s")
        finally:
            agent.stop()
            remove_agent_traces(kube, ["kubesim-node"])
    finally:
        kube.stop()


def apply_until_ready(config: Path, name: str) -> float:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "main", "image": "x",
                                    "command": ["sleep", "600"]}]}}  # fmt: skip
    started = time.monotonic()
    run_kubectl(config, "apply", "-n", "measure", "-f", "-", stdin=json.dumps(pod))
    run_kubectl(config, "wait", "-n", "measure", "--for=condition=Ready", f"pod/{name}",
                "--timeout=60s")  # fmt: skip
    return time.monotonic() - started


def deployment_rollout(config: Path) -> float:
    labels = {"app": "many"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "many"},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                     {"name": "main", "image": "x", "command": ["sleep", "600"]}]}}},
    }  # fmt: skip
    started = time.monotonic()
    run_kubectl(config, "apply", "-n", "measure", "-f", "-", stdin=json.dumps(deployment))
    run_kubectl(config, "rollout", "status", "deployment/many", "-n", "measure",
                "--timeout=300s")  # fmt: skip
    return time.monotonic() - started


if __name__ == "__main__":
    main()
