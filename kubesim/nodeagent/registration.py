"""The agent's Node objects and their heartbeats: a Lease renewed often, status now and then.

node_object() is a pure builder (capacity and allocatable from NodeCapacity,
Ready and the pressure conditions, addresses on loopback). NodeHeartbeat
registers each node (create, or patch the status of one left from an
earlier run), then renews its Lease in kube-node-lease every
RENEW_SECONDS and re-posts the node's conditions every STATUS_SECONDS, as a
real kubelet does, so the node lifecycle controller keeps it Ready.
The Lease is owned by its Node: deleting the Node removes it too.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import platform
import socket
from typing import Any

from kubesim.kubelet.scheduler import NodeCapacity
from kubesim.nodeagent.client import MERGE_PATCH, ApiClient, ApiError

Obj = dict[str, Any]
log = logging.getLogger(__name__)

LEASE_SECONDS = 40  # what a real kubelet asks for
RENEW_SECONDS = 10.0  # a quarter of the lease, as the kubelet renews
STATUS_SECONDS = 60.0
NODE_IP = "127.0.0.1"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def now_micro() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_seconds() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _resources(node: NodeCapacity) -> Obj:
    return {
        "cpu": f"{node.cpu_millicores}m",
        "memory": f"{node.memory_bytes // 1024}Ki",
        "pods": str(node.pods),
        "ephemeral-storage": "100Gi",
    }


def node_status(node: NodeCapacity, kubelet_version: str, since: str) -> Obj:
    """The status a Ready node reports; `since` is when the conditions last changed."""
    beat = now_seconds()

    def condition(kind: str, value: str, reason: str, message: str) -> Obj:
        return {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": beat,
            "lastTransitionTime": since,
        }

    return {
        "capacity": _resources(node),
        "allocatable": _resources(node),
        "conditions": [
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            condition(
                "DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            condition(
                "Ready", "True", "KubeletReady", "kubesim node agent is posting ready status"
            ),
        ],
        "addresses": [
            {"type": "InternalIP", "address": NODE_IP},
            {"type": "Hostname", "address": node.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": _boot_id(),
            "kernelVersion": platform.release(),
            "osImage": f"kubesim on {socket.gethostname()}",
            "containerRuntimeVersion": "kubesim://processes",
            "kubeletVersion": kubelet_version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": _ARCH.get(platform.machine(), platform.machine()),
        },
    }


def node_object(node: NodeCapacity, kubelet_version: str, since: str) -> Obj:
    labels = {
        **node.all_labels(),
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": _ARCH.get(platform.machine(), platform.machine()),
        "kubesim.io/node-agent": "true",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": labels},
        "spec": {},
        "status": node_status(node, kubelet_version, since),
    }


def lease_object(node_name: str, node_uid: str) -> Obj:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node_name,
            "namespace": "kube-node-lease",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}
            ],
        },
        "spec": {
            "holderIdentity": node_name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": now_micro(),
        },
    }


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


class NodeHeartbeat:
    """Registers the nodes and keeps them alive while the agent runs."""

    def __init__(self, client: ApiClient, nodes: list[NodeCapacity], kubelet_version: str) -> None:
        self._client = client
        self._nodes = nodes
        self._version = kubelet_version
        self._since = now_seconds()
        self._uids: dict[str, str] = {}
        self.renewals = 0

    async def register(self) -> None:
        """Create each Node, or take over one of that name; raises ApiError (403 and such)."""
        for node in self._nodes:
            body = node_object(node, self._version, self._since)
            try:
                made = await self._client.request("POST", "/api/v1/nodes", body=body)
            except ApiError as e:
                if e.status != 409:
                    raise
                path = f"/api/v1/nodes/{node.name}"
                patch = {"metadata": {"labels": body["metadata"]["labels"]}}
                await self._client.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
                made = await self._client.request(
                    "PATCH", path + "/status", body={"status": body["status"]},
                    content_type=MERGE_PATCH,
                )  # fmt: skip
            self._uids[node.name] = str(made["metadata"]["uid"])
            await self._renew(node.name)

    async def run(self) -> None:
        """Renew the Leases; post the node status each STATUS_SECONDS. Never raises ApiError."""
        beats_per_status = max(1, round(STATUS_SECONDS / RENEW_SECONDS))
        beat = 0
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            beat += 1
            for node in self._nodes:
                try:
                    await self._renew(node.name)
                    if beat % beats_per_status == 0:
                        await self._post_status(node)
                except ApiError as e:
                    log.warning("node %s: heartbeat failed: %s", node.name, e)

    async def _renew(self, name: str) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
        patch = {"spec": {"holderIdentity": name, "renewTime": now_micro(),
                          "leaseDurationSeconds": LEASE_SECONDS}}  # fmt: skip
        try:
            await self._client.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        except ApiError as e:
            if e.status != 404:
                raise
            lease = lease_object(name, self._uids.get(name, ""))
            collection = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
            await self._client.request("POST", collection, body=lease)
        self.renewals += 1

    async def _post_status(self, node: NodeCapacity) -> None:
        path = f"/api/v1/nodes/{node.name}/status"
        status = node_status(node, self._version, self._since)
        await self._client.request("PATCH", path, body={"status": status}, content_type=MERGE_PATCH)
