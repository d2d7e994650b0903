"""Placing pods on simulated nodes by their resource requests.

Pure bookkeeping of capacity (cpu millicores, memory bytes, pod count) and
nodeSelector labels; never writes to the store or starts anything. A pod that
fits nowhere gets the message a real scheduler would put in its
FailedScheduling event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubesim.kubelet.quantities import cpu_millicores, memory_bytes


@dataclass(frozen=True)
class NodeCapacity:
    """One simulated node: what it can hold and the labels selectors match.

    The defaults are a roomy machine (64 cores, 256Gi, 20,000 pods) so scale
    tests fit; "cluster full" tests configure a small node.
    """

    name: str
    cpu_millicores: int = 64_000
    memory_bytes: int = 256 * 2**30
    pods: int = 20_000
    labels: Mapping[str, str] = field(default_factory=dict)

    def all_labels(self) -> dict[str, str]:
        base = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux"}
        return {**base, **self.labels}


@dataclass(frozen=True)
class Requests:
    """What a pod asks the scheduler for."""

    cpu_millicores: int = 0
    memory_bytes: int = 0


def pod_requests(spec: Mapping[str, Any]) -> Requests:
    """Sum of the containers' requests; a limit without a request counts as the request."""
    cpu = memory = 0
    for container in spec.get("containers") or []:
        resources = container.get("resources") or {}
        asked = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        if "cpu" in asked:
            cpu += cpu_millicores(asked["cpu"])
        if "memory" in asked:
            memory += memory_bytes(asked["memory"])
    return Requests(cpu, memory)


@dataclass
class _NodeUse:
    capacity: NodeCapacity
    cpu: int = 0
    memory: int = 0
    pods: int = 0


class Unschedulable(Exception):
    """No node can hold the pod; the message is the FailedScheduling text."""


class Scheduler:
    """Tracks what each node holds and picks the least-loaded node that fits."""

    def __init__(self, nodes: list[NodeCapacity]) -> None:
        if not nodes:
            raise ValueError("a cluster needs at least one node")
        self._nodes = {node.name: _NodeUse(node) for node in nodes}
        self._placed: dict[str, tuple[str, Requests]] = {}

    def place(self, key: str, requests: Requests, node_selector: Mapping[str, str]) -> str:
        """Reserve room for the pod `key` and return the node name, or raise Unschedulable."""
        if key in self._placed:
            return self._placed[key][0]
        reasons: dict[str, int] = {}
        fitting: list[_NodeUse] = []
        for use in self._nodes.values():
            why = _misfit(use, requests, node_selector)
            if why:
                for reason in why:
                    reasons[reason] = reasons.get(reason, 0) + 1
            else:
                fitting.append(use)
        if not fitting:
            detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
            raise Unschedulable(f"0/{len(self._nodes)} nodes are available: {detail}.")
        chosen = min(fitting, key=lambda use: (use.pods, use.capacity.name))
        chosen.cpu += requests.cpu_millicores
        chosen.memory += requests.memory_bytes
        chosen.pods += 1
        self._placed[key] = (chosen.capacity.name, requests)
        return chosen.capacity.name

    def release(self, key: str) -> bool:
        """Free the pod's reservation; True if it held one (capacity may now fit others)."""
        placed = self._placed.pop(key, None)
        if placed is None:
            return False
        use = self._nodes[placed[0]]
        use.cpu -= placed[1].cpu_millicores
        use.memory -= placed[1].memory_bytes
        use.pods -= 1
        return True

    def node_names(self) -> list[str]:
        return list(self._nodes)


def _misfit(use: _NodeUse, requests: Requests, node_selector: Mapping[str, str]) -> list[str]:
    labels = use.capacity.all_labels()
    if any(labels.get(key) != value for key, value in node_selector.items()):
        return ["node(s) didn't match Pod's node affinity/selector"]
    reasons = []
    if use.pods + 1 > use.capacity.pods:
        reasons.append("Too many pods")
    if use.cpu + requests.cpu_millicores > use.capacity.cpu_millicores:
        reasons.append("Insufficient cpu")
    if use.memory + requests.memory_bytes > use.capacity.memory_bytes:
        reasons.append("Insufficient memory")
    return reasons
