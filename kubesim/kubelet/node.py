"""The simulated kubelet: watches pods in the store and runs them on simulated nodes.

SimKubelet implements the Kubelet seam of kubesim.contracts. It reacts to
store changes (no polling per pod), schedules pending pods by capacity,
hands each placed pod to a PodWorker, writes status in batches once per
loop turn, binds PVCs at once, and measures usage for metrics.k8s.io. It
only uses the ObjectStore protocol, never the API server's internals.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from kubesim.contracts import ObjectStore, PodUsage
from kubesim.kubelet import status as st
from kubesim.kubelet.addresses import AddressesExhausted, AddressPool
from kubesim.kubelet.config import KubeletConfig
from kubesim.kubelet.echo import EchoServers
from kubesim.kubelet.events import SCHEDULER, EventRecorder
from kubesim.kubelet.orphans import ProcessLedger, end_orphans
from kubesim.kubelet.pod import PodWorker
from kubesim.kubelet.runtime import ProcessRuntime
from kubesim.kubelet.scheduler import Scheduler, Unschedulable, pod_requests
from kubesim.kubelet.usage import PodProcessUsage
from kubesim.kubelet.users import PodUsers, closed_to_others
from kubesim.kubelet.volumes import VolumeHost

Obj = dict[str, Any]
log = logging.getLogger(__name__)


@dataclass
class NodeServices:
    """What every PodWorker shares: the node's tools and its status batching."""

    kubelet: SimKubelet
    config: KubeletConfig
    store: ObjectStore
    events: EventRecorder
    runtime: ProcessRuntime
    volumes: VolumeHost
    echo: EchoServers
    probe_session: aiohttp.ClientSession
    users: PodUsers | None  # None: every pod runs as this process's user

    def lookup(self, resource: str, namespace: str, name: str) -> Obj | None:
        return self.store.get(resource, namespace, name)

    async def gate(self) -> None:
        await self.kubelet._unpaused.wait()

    def mark_dirty(self, worker: PodWorker) -> None:
        self.kubelet._mark_dirty(worker)

    def flush_now(self, worker: PodWorker) -> None:
        self.kubelet._write_status(worker)

    def pod_finished(self, worker: PodWorker) -> None:
        self.kubelet._release_capacity(worker)


class SimKubelet:
    """Every simulated node of the cluster, driven through the Kubelet protocol."""

    def __init__(self, config: KubeletConfig | None = None) -> None:
        self.config = config or KubeletConfig()
        self._unpaused = asyncio.Event()
        self._unpaused.set()
        self._workers: dict[str, PodWorker] = {}  # by pod uid
        self._by_name: dict[tuple[str, str], PodWorker] = {}
        self._pending: dict[str, PodWorker] = {}  # waiting for a node, in arrival order
        self._dirty: set[PodWorker] = set()
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: list[Any] = []
        self._schedule_wanted = asyncio.Event()
        self._scheduler = Scheduler(list(self.config.nodes))
        self._addresses = AddressPool(self.config.pod_network)
        self._usage = PodProcessUsage(self._sessions_of)
        self._owns_data_dir = False
        self._services: NodeServices | None = None
        self._ledger: ProcessLedger | None = None
        self._loop_task: asyncio.Task[None] | None = None

    # -- the Kubelet protocol -------------------------------------------------

    @property
    def usage_source(self) -> PodUsage:
        return self._usage

    async def start(self, store: ObjectStore) -> None:
        data_dir = self.config.data_dir
        if data_dir is None:
            data_dir = Path(tempfile.mkdtemp(prefix="kubesim-"))
            self._owns_data_dir = True
        isolate = self.config.isolates()
        self._announce_isolation(isolate, data_dir)
        self._ledger = await self._take_over(data_dir)
        self._services = NodeServices(
            kubelet=self,
            config=self.config,
            store=store,
            events=EventRecorder(store),
            runtime=ProcessRuntime(self.config.memory_check_interval, self._ledger),
            volumes=VolumeHost(data_dir, isolate),
            echo=EchoServers(),
            probe_session=aiohttp.ClientSession(),
            users=PodUsers(salt=str(data_dir.resolve())) if isolate else None,
        )
        self._unsubscribe.append(store.subscribe("pods", self._on_pod))
        for pod in store.list("pods"):
            self._on_pod("ADDED", pod)
        if self.config.schedules:  # else the API server's PV controller binds claims
            self._unsubscribe.append(store.subscribe("persistentvolumeclaims", self._on_claim))
            for claim in store.list("persistentvolumeclaims"):
                self._on_claim("ADDED", claim)
        self._loop_task = asyncio.create_task(self._schedule_loop(), name="kubesim-scheduler")
        self._loop_task.add_done_callback(self._task_done)  # logged if it ever fails

    async def _take_over(self, data_dir: Path) -> ProcessLedger | None:
        """End what a killed kubelet left running (its pods are gone from our API); start ours."""
        state_dir = self.config.state_dir
        if state_dir is None:
            return None
        try:
            await end_orphans(state_dir, self.config.stop_grace)
            return ProcessLedger(state_dir, data_dir if self._owns_data_dir else None)
        except OSError as e:
            log.warning("cannot keep pod process records in %s: %s", state_dir, e)
            return None

    @staticmethod
    def _announce_isolation(isolate: bool, data_dir: Path) -> None:
        if not isolate:
            log.warning(
                "pods run as this process's own Unix user (uid %d): users are NOT isolated "
                "from each other (each can read the others' files and environment); run as "
                "root to give each pod a Unix user of its own",
                os.geteuid(),
            )
            return
        closed = closed_to_others(data_dir)
        if closed is not None:
            log.warning(
                "pods run as users of their own but cannot reach the data dir %s: %s is "
                "closed to other users",
                data_dir,
                closed,
            )

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self._unpaused.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            # Its failure, if any, was logged when it ended: stopping still goes on.
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        services = self._services
        if services is None:
            return
        grace = self.config.stop_grace
        await asyncio.gather(
            *(w.terminate(grace, remove=False) for w in list(self._workers.values()))
        )
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await services.runtime.stop_all(grace)
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
        await services.echo.close()
        await services.probe_session.close()
        self._workers.clear()
        self._by_name.clear()
        self._pending.clear()
        if self._owns_data_dir:
            shutil.rmtree(services.volumes.data_dir, ignore_errors=True)
        self._services = None

    def set_paused(self, paused: bool) -> None:
        if paused:
            self._unpaused.clear()
            return
        self._unpaused.set()
        self._schedule_wanted.set()
        if self._dirty:
            self._schedule_flush()

    # -- extras for the API server ------------------------------------------------

    @property
    def log_source(self) -> SimKubelet:
        """The PodLogs seam: this kubelet reads its containers' output files."""
        return self

    def logs(
        self, namespace: str, name: str, container: str | None, tail_lines: int | None
    ) -> str | None:
        """A container's stdout and stderr so far (first container if none named)."""
        worker = self._by_name.get((namespace, name))
        if worker is None or self._services is None or not worker.containers:
            return None
        container = container or worker.containers[0].view.name
        path = self._services.volumes.data_dir / "pods" / worker.uid / "logs" / f"{container}.log"
        try:
            text = path.read_bytes()[-4 * 2**20 :].decode("utf-8", "replace")
        except OSError:
            return None
        if tail_lines is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail_lines:]) if tail_lines > 0 else ""
        return text

    # -- store callbacks (synchronous, so they only note what changed) -----------

    def _on_pod(self, kind: str, pod: Obj) -> None:
        metadata = pod.get("metadata") or {}
        uid = metadata.get("uid") or f"{metadata.get('namespace')}/{metadata.get('name')}"
        worker = self._workers.get(uid)
        if kind == "DELETED":
            if worker is None or worker.vanished:
                return
            worker.vanished = True  # gone from the store: never write it again
            if not worker.retiring:
                self._pending.pop(uid, None)
                self._spawn(self._retire(worker, grace=0.0, remove=False), f"vanish-{uid}")
            return
        if worker is None:
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed") or self._services is None:
                return  # finished before this kubelet started: nothing to run
            if not self.config.schedules and not self._bound_here(pod):
                return  # another scheduler places it; only pods bound to our nodes run here
            worker = PodWorker(pod, self._services)
            self._workers[uid] = worker
            self._by_name[(worker.namespace, worker.name)] = worker
            self._pending[uid] = worker
            self._schedule_wanted.set()
        was_deleting = worker.deleting.is_set()
        grace_before = worker.grace_period()
        worker.observe(pod)
        if worker.deleting.is_set() and not was_deleting:
            self._pending.pop(uid, None)
            self._spawn(self._retire(worker, grace=None, remove=True), f"delete-{uid}")
        elif was_deleting and worker.grace_period() < grace_before:
            worker.shorten_grace(worker.grace_period())  # a second DELETE asked for less

    def _on_claim(self, kind: str, claim: Obj) -> None:
        if kind == "DELETED" or claim["metadata"].get("deletionTimestamp"):
            return
        # Any claim that appears or changes may be what a pending pod waits for.
        self._schedule_wanted.set()
        if (claim.get("status") or {}).get("phase") != "Bound":
            # Written on the next loop turn: the store is still inside its own change.
            asyncio.get_running_loop().call_soon(self._bind_claim, claim)

    # -- scheduling -----------------------------------------------------------

    async def _schedule_loop(self) -> None:
        while True:
            await self._schedule_wanted.wait()
            self._schedule_wanted.clear()
            await self._unpaused.wait()
            for worker in list(self._pending.values()):
                try:
                    self._try_place(worker)
                except Exception:
                    # One pod must never stop scheduling for all the others.
                    log.exception("could not schedule pod %s/%s", worker.namespace, worker.name)
                await asyncio.sleep(0)  # let a thousand placements share the loop

    def _bound_here(self, pod: Obj) -> bool:
        return (pod.get("spec") or {}).get("nodeName") in self._scheduler.node_names()

    def _try_place(self, worker: PodWorker) -> None:
        assert self._services is not None
        if worker.uid not in self._pending or worker.deleting.is_set():
            return
        spec = worker.pod.get("spec") or {}
        if not self.config.schedules:
            self._run_bound(worker, str(spec.get("nodeName")))
            return
        try:
            self._check_claims(worker)
            requests = pod_requests(spec)
            node = self._scheduler.place(worker.uid, requests, spec.get("nodeSelector") or {})
        except Unschedulable as e:
            self._unschedulable(worker, str(e))
            return
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            # Data the API stored as written (it checks no schema) but no node can
            # read: the pod waits, with a reason, like any pod that does not fit.
            self._unschedulable(worker, self._unreadable(worker, e))
            return
        try:
            address = self._addresses.allocate()
        except AddressesExhausted as e:
            self._scheduler.release(worker.uid)
            self._unschedulable(worker, str(e))
            return
        del self._pending[worker.uid]
        self._services.store.set_node_name(worker.namespace, worker.name, node)
        self._services.events.record(
            worker.pod,
            "Scheduled",
            f"Successfully assigned {worker.namespace}/{worker.name} to {node}",
            component=SCHEDULER,
        )
        worker.start(node, address)

    def _run_bound(self, worker: PodWorker, node: str) -> None:
        """A pod the API server's scheduler bound to one of our nodes: give it an address, run it.

        Capacity is the real scheduler's business (it read the Node's allocatable).
        """
        try:
            address = self._addresses.allocate()
        except AddressesExhausted as e:
            log.warning("pod %s/%s waits: %s", worker.namespace, worker.name, e)
            return  # stays pending: tried again when an address is released
        del self._pending[worker.uid]
        worker.start(node, address)

    def _unschedulable(self, worker: PodWorker, message: str) -> None:
        assert self._services is not None
        if worker.view.unschedulable != message:
            worker.view.unschedulable = message
            self._mark_dirty(worker)
        self._services.events.record(
            worker.pod, "FailedScheduling", message, warning=True, component=SCHEDULER
        )

    def _unreadable(self, worker: PodWorker, error: Exception) -> str:
        message = (
            f"0/{len(self._scheduler.node_names())} nodes are available: "
            f"pod spec cannot be read: {type(error).__name__}: {error}."
        )
        if worker.view.unschedulable != message:  # once per pod, not every pass
            log.warning("pod %s/%s cannot be scheduled: %s", worker.namespace, worker.name, message)
        return message

    def _check_claims(self, worker: PodWorker) -> None:
        assert self._services is not None
        for volume in (worker.pod.get("spec") or {}).get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if (
                claim
                and self._services.store.get("persistentvolumeclaims", worker.namespace, claim)
                is None
            ):
                raise Unschedulable(
                    f"0/{len(self._scheduler.node_names())} nodes are available: "
                    f'persistentvolumeclaim "{claim}" not found.'
                )

    def _release_capacity(self, worker: PodWorker) -> None:
        if self._scheduler.release(worker.uid):
            self._schedule_wanted.set()

    def _bind_claim(self, claim: Obj) -> None:
        if self._services is None:
            return
        metadata, spec = claim["metadata"], claim.get("spec") or {}
        namespace = metadata.get("namespace", "default")
        self._services.volumes.claim_dir(namespace, metadata["name"])
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        self._services.store.update_status(
            "persistentvolumeclaims",
            namespace,
            metadata["name"],
            {
                "phase": "Bound",
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "capacity": {"storage": storage},
            },
        )

    # -- deletion -------------------------------------------------------------

    async def _retire(self, worker: PodWorker, grace: float | None, remove: bool) -> None:
        worker.retiring = True
        await self._unpaused.wait()
        await worker.terminate(worker.grace_period() if grace is None else grace, remove=remove)
        self._release_capacity(worker)
        if worker.view.pod_ip:
            self._addresses.release(worker.view.pod_ip)
        assert self._services is not None
        self._services.volumes.remove_pod(worker.uid)
        self._services.events.forget(worker.namespace, worker.uid)
        self._usage.forget(worker.namespace, worker.name)
        self._workers.pop(worker.uid, None)
        self._pending.pop(worker.uid, None)
        self._dirty.discard(worker)
        if self._by_name.get((worker.namespace, worker.name)) is worker:
            del self._by_name[(worker.namespace, worker.name)]

    # -- status batching ----------------------------------------------------------

    def _mark_dirty(self, worker: PodWorker) -> None:
        self._dirty.add(worker)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._unpaused.is_set():
            return  # held until unpaused
        dirty, self._dirty = self._dirty, set()
        for worker in dirty:
            self._write_status(worker)

    def _write_status(self, worker: PodWorker) -> None:
        if worker.vanished or self._services is None:
            return
        self._dirty.discard(worker)
        # One pod's status failing to build or write must not lose the rest of the batch.
        try:
            old = worker.pod.get("status") or {}
            status = st.pod_status(worker.view, worker.pod.get("spec") or {}, old, st.rfc3339())
            if status != worker.pod.get("status"):
                self._services.store.update_status("pods", worker.namespace, worker.name, status)
        except Exception:
            log.exception("could not write status of pod %s/%s", worker.namespace, worker.name)

    # -- helpers ------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"kubesim-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """Every background task ends here: forgotten, and its failure logged."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("kubelet task %s failed", task.get_name(), exc_info=task.exception())

    def _sessions_of(self, namespace: str, name: str) -> list[int] | None:
        worker = self._by_name.get((namespace, name))
        return worker.sessions() if worker else None
