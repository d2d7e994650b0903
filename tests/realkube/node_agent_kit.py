"""Run kubesim's node agent (`podgate sim --node-only`) against the real control plane.

start_agent() starts the CLI and waits (bounded) for its Ready line;
AgentRun.stop() ends it with SIGTERM. remove_agent_traces() deletes what an
agent leaves in the cluster (its Nodes, the `kubesim-local` StorageClass,
the PersistentVolumes it provisioned), so the session's other tests still
see a cluster with no nodes, whatever the order.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from realkube_kit import RealKube, run_kubectl, stop_process

READY_SECONDS = 60.0
STOP_SECONDS = 30.0


@dataclass
class AgentRun:
    process: subprocess.Popen[bytes]
    node: str
    data_dir: Path
    ready_line: str
    seconds_to_ready: float
    log: Path

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> int:
        return stop_process(self.process, STOP_SECONDS)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def agent_command(kubeconfig: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "podgate.cli", "sim", "--node-only",
            "--kubeconfig", str(kubeconfig), *extra]  # fmt: skip


def start_agent(kubeconfig: Path, node: str, data_dir: Path) -> AgentRun:
    """The agent running as `node`, once it printed that the node is Ready."""
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o711)  # run as root, pods' own users must pass it
    log = data_dir.parent / f"{node}.stderr"
    command = agent_command(kubeconfig, "--node-name", node, "--data-dir", str(data_dir))
    started = time.monotonic()
    with open(log, "w") as err:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
            env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
        )  # fmt: skip
    assert process.stdout is not None
    out = process.stdout.fileno()
    seen = ""
    deadline = started + READY_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        if select.select([out], [], [], 0.1)[0]:
            seen += os.read(out, 4096).decode(errors="replace")
        if "is Ready on" in seen:
            return AgentRun(process, node, data_dir, seen.strip(), time.monotonic() - started, log)
    process.kill()
    process.wait()
    raise RuntimeError(f"agent not ready: {seen!r}\n{log.read_text(errors='replace')[-4000:]}")


def remove_agent_traces(kube: RealKube, nodes: list[str]) -> None:
    """Delete the agent's Nodes, its StorageClass and the volumes it provisioned."""
    config = kube.kubeconfig
    for node in nodes:
        run_kubectl(config, "delete", "node", node, "--ignore-not-found", "--wait=false")
    run_kubectl(config, "delete", "storageclass", "kubesim-local", "--ignore-not-found")
    _, out = run_kubectl(config, "get", "persistentvolumes", "-o", "json")
    for volume in json.loads(out)["items"]:
        annotations = volume["metadata"].get("annotations") or {}
        if annotations.get("pv.kubernetes.io/provisioned-by") == "kubesim.io/local-path":
            run_kubectl(config, "delete", "persistentvolume", volume["metadata"]["name"],
                        "--ignore-not-found", "--wait=false")  # fmt: skip
