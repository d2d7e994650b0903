"""A local-path style volume provisioner: hostPath PersistentVolumes under the data dir.

It makes the StorageClass `kubesim-local` (the default class when the
cluster has none), watches claims of that class, and for a pending one
creates a PersistentVolume `pvc-<claim uid>`: hostPath
`<data dir>/claims/<namespace>/<claim>` (the directory kubesim's kubelet
mounts for that claim), pre-bound to the claim through claimRef and tied
to the agent's node by nodeAffinity. Immediate claims are provisioned at
once; WaitForFirstConsumer ones once the scheduler has picked one of our
nodes (annotation volume.kubernetes.io/selected-node). The API server's PV
controller does the binding. When a claim is deleted, its Released volume
is deleted with its directory (reclaimPolicy Delete).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

from kubesim.kubelet.volumes import VolumeHost
from kubesim.nodeagent.client import ApiClient, ApiError
from kubesim.nodeagent.informer import Informer

Obj = dict[str, Any]
log = logging.getLogger(__name__)

STORAGE_CLASS = "kubesim-local"
PROVISIONER = "kubesim.io/local-path"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
CLASSES = "/apis/storage.k8s.io/v1/storageclasses"


def storage_class(default: bool) -> Obj:
    annotations = {DEFAULT_CLASS: "true"} if default else {}
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": annotations},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }


def volume_for(claim: Obj, host_path: Path, node: str) -> Obj:
    """The PersistentVolume that satisfies `claim` on `node` (pure)."""
    metadata, spec = claim["metadata"], claim.get("spec") or {}
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{metadata['uid']}",
            "annotations": {PROVISIONED_BY: PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "hostPath": {"path": str(host_path), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": metadata["namespace"],
                "name": metadata["name"],
                "uid": metadata["uid"],
            },
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [node],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


class LocalProvisioner:
    """Provisions claims of `kubesim-local` for the agent's nodes."""

    def __init__(self, client: ApiClient, volumes: VolumeHost, nodes: list[str]) -> None:
        self._client = client
        self._volumes = volumes
        self._nodes = nodes
        self.claims = Informer(client, "/api/v1/persistentvolumeclaims")
        self.volumes = Informer(client, "/api/v1/persistentvolumes")
        self._wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.made_default = False
        self._mode = "WaitForFirstConsumer"  # of our class, as found or made

    async def start(self) -> None:
        await self.ensure_class()
        await asyncio.gather(self.claims.list_once(), self.volumes.list_once())
        for informer in (self.claims, self.volumes):
            informer.subscribe(lambda kind, obj: self._wanted.set())
        loop = asyncio.get_running_loop()
        for coro, name in (
            (self.claims.run(), "claims"),
            (self.volumes.run(), "volumes"),
            (self._reconcile_loop(), "provisioner"),
        ):
            self._tasks.append(loop.create_task(coro, name=f"kubesim-agent {name}"))
        self._wanted.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def ensure_class(self) -> None:
        """Create the StorageClass unless it exists; default only if no class is default."""
        classes = await self._client.request("GET", CLASSES)
        items = classes.get("items") or []
        for item in items:
            if item["metadata"]["name"] == STORAGE_CLASS:
                self._mode = str(item.get("volumeBindingMode") or "Immediate")
                return
        has_default = any(
            ((item["metadata"].get("annotations") or {}).get(DEFAULT_CLASS)) == "true"
            for item in items
        )
        try:
            await self._client.request("POST", CLASSES, body=storage_class(not has_default))
            self.made_default = not has_default
        except ApiError as e:
            if e.status != 409:  # made meanwhile by another agent
                raise

    async def _reconcile_loop(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self._reconcile()
            except ApiError as e:
                log.warning("volume provisioning failed (%s): retrying", e)
                await asyncio.sleep(1.0)
                self._wanted.set()

    async def _reconcile(self) -> None:
        existing = {key[1] for key in self.volumes.cache}
        for claim in list(self.claims.cache.values()):
            node = self._node_for(claim)
            name = f"pvc-{claim['metadata'].get('uid')}"
            if node is None or name in existing:
                continue
            metadata = claim["metadata"]
            host = self._volumes.claim_dir(metadata["namespace"], metadata["name"])
            try:
                await self._client.request(
                    "POST", "/api/v1/persistentvolumes", body=volume_for(claim, host, node)
                )
                log.info("provisioned %s for claim %s/%s", name, metadata["namespace"],
                         metadata["name"])  # fmt: skip
            except ApiError as e:
                if e.status != 409:
                    raise
        for volume in list(self.volumes.cache.values()):
            await self._reclaim(volume)

    def _node_for(self, claim: Obj) -> str | None:
        """Which of our nodes to provision the pending claim on, or None (not ours, not yet)."""
        spec, metadata = claim.get("spec") or {}, claim["metadata"]
        if (claim.get("status") or {}).get("phase") != "Pending" or spec.get("volumeName"):
            return None
        if spec.get("storageClassName") != STORAGE_CLASS or metadata.get("deletionTimestamp"):
            return None
        selected = (metadata.get("annotations") or {}).get(SELECTED_NODE)
        if selected:
            return selected if selected in self._nodes else None
        # Immediate binding: no node chosen; ours is the only place the volume can be.
        return self._nodes[0] if self._mode == "Immediate" else None

    async def _reclaim(self, volume: Obj) -> None:
        metadata, spec = volume["metadata"], volume.get("spec") or {}
        if (metadata.get("annotations") or {}).get(PROVISIONED_BY) != PROVISIONER:
            return
        if (volume.get("status") or {}).get("phase") != "Released":
            return
        if spec.get("persistentVolumeReclaimPolicy") != "Delete" or metadata.get(
            "deletionTimestamp"
        ):
            return
        path = (spec.get("hostPath") or {}).get("path")
        try:
            await self._client.request("DELETE", f"/api/v1/persistentvolumes/{metadata['name']}")
        except ApiError as e:
            if e.status != 404:
                raise
        if path and Path(path).is_relative_to(self._volumes.data_dir):
            shutil.rmtree(path, ignore_errors=True)
