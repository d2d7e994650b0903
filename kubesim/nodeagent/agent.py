"""NodeAgent: kubesim's kubelet as the node agent of any Kubernetes API server.

It wires four parts around one ApiClient: RemoteStore (the kubelet's
ObjectStore seam over HTTP: pods bound to our nodes, status, Events,
final deletion), SimKubelet itself with `schedules=False` (the server's
kube-scheduler binds pods, its PV controller binds claims), NodeHeartbeat
(Node registration, Lease renewal) and LocalProvisioner (hostPath volumes
for claims of the `kubesim-local` class). Every failure at start becomes
AgentError with a message for a person; nothing here deletes the Node at
stop (a real kubelet leaves it; the node lifecycle controller marks it
NotReady).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from kubesim.kubelet.config import KubeletConfig
from kubesim.kubelet.node import SimKubelet
from kubesim.kubelet.volumes import VolumeHost
from kubesim.nodeagent.client import ApiClient, ApiError
from kubesim.nodeagent.kubeconfig import ClusterAccess, KubeconfigError, load_kubeconfig
from kubesim.nodeagent.provisioner import LocalProvisioner
from kubesim.nodeagent.registration import NodeHeartbeat
from kubesim.nodeagent.store import RemoteStore

log = logging.getLogger(__name__)

DRAIN_SECONDS = 5.0  # at stop, how long the last status writes may take


class AgentError(Exception):
    """The agent cannot run against this server; the message says why, for a person."""


def explain(error: ApiError, access: ClusterAccess) -> str:
    """What an API refusal at start means for whoever runs the agent."""
    where = f"the API server at {access.server} (context {access.context!r})"
    if error.status == 0:
        return error.message
    if error.status == 401:
        return (
            f"{where} did not accept the kubeconfig's credentials (401 Unauthorized): "
            f"{error.message or 'the token or certificate is unknown or expired'}"
        )
    if error.status == 403:
        return (
            f"{where} forbids what the node agent must do (403 Forbidden): {error.message}. "
            "Its user needs to create and update Nodes, Leases in kube-node-lease, "
            "PersistentVolumes and StorageClasses, to watch Pods, Secrets, ConfigMaps and "
            "PersistentVolumeClaims, and to write pods/status and Events (cluster-admin can)"
        )
    return f"{where} answered {error}"


class NodeAgent:
    """Runs the pods that the server's scheduler binds to this agent's nodes."""

    def __init__(
        self, kubeconfig: Path, config: KubeletConfig | None = None, *, context: str | None = None
    ) -> None:
        self._kubeconfig = Path(kubeconfig)
        self._context = context
        # The server schedules: the kubelet only runs pods bound to its nodes.
        self.config = replace(config or KubeletConfig(), schedules=False)
        self._version = ""
        self._server = ""
        self._client: ApiClient | None = None
        self._store: RemoteStore | None = None
        self._kubelet: SimKubelet | None = None
        self._provisioner: LocalProvisioner | None = None
        self.heartbeat: NodeHeartbeat | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._temp_data_dir: Path | None = None

    @property
    def nodes(self) -> list[str]:
        return [node.name for node in self.config.nodes]

    @property
    def version(self) -> str:
        """The server's gitVersion (empty before start)."""
        return self._version

    @property
    def server(self) -> str:
        """The API server's URL, from the kubeconfig (empty before start)."""
        return self._server

    @property
    def store(self) -> RemoteStore | None:
        return self._store

    async def start(self) -> None:
        """Connect, register the nodes, start running pods; raises AgentError."""
        try:
            access = load_kubeconfig(self._kubeconfig, self._context)
        except KubeconfigError as e:
            raise AgentError(str(e)) from e
        self._server = access.server
        self._client = client = ApiClient(access)
        try:
            await self._start(client)
        except ApiError as e:
            await self.stop()
            raise AgentError(explain(e, access)) from e
        except BaseException:
            await self.stop()
            raise

    async def _start(self, client: ApiClient) -> None:
        answer = await client.request("GET", "/version")
        self._version = str(answer.get("gitVersion") or "")
        data_dir = self.config.data_dir
        if data_dir is None:
            # The provisioner's volumes and the kubelet's claims must share one directory.
            data_dir = self._temp_data_dir = Path(tempfile.mkdtemp(prefix="kubesim-node-"))
            self.config = replace(self.config, data_dir=data_dir)
        self._store = RemoteStore(client, self.nodes)
        await self._store.start()
        self._kubelet = SimKubelet(self.config)
        await self._kubelet.start(self._store)
        volumes = VolumeHost(data_dir, self.config.isolates())
        self._provisioner = LocalProvisioner(client, volumes, self.nodes)
        await self._provisioner.start()
        kubelet_version = self._version or "v0.0.0"
        self.heartbeat = NodeHeartbeat(client, list(self.config.nodes), kubelet_version)
        await self.heartbeat.register()
        self._heartbeat_task = asyncio.create_task(
            self.heartbeat.run(), name="kubesim-agent heartbeat"
        )

    def set_paused(self, paused: bool) -> None:
        """While paused no pod makes progress (the node itself stays Ready)."""
        if self._kubelet is not None:
            self._kubelet.set_paused(paused)

    async def stop(self) -> None:
        """Stop every pod's processes, send the last statuses (bounded), disconnect."""
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)
            self._heartbeat_task = None
        if self._kubelet is not None:
            await self._kubelet.stop()
            self._kubelet = None
        if self._store is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_SECONDS):
                    await self._store.drained()
            await self._store.stop()
            self._store = None
        if self._provisioner is not None:
            await self._provisioner.stop()
            self._provisioner = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._temp_data_dir is not None:
            shutil.rmtree(self._temp_data_dir, ignore_errors=True)
            self._temp_data_dir = None
