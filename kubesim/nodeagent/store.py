"""kubesim's ObjectStore seam over a real API server, so SimKubelet runs unchanged.

Reads come from informer caches: the pods bound to the agent's nodes
(fieldSelector spec.nodeName), and every Secret and ConfigMap (env and
volumes look them up synchronously). Writes are asynchronous, as they must
be over HTTP: the kubelet's call returns at once with the local result
(and, like kubesim's store, calls the subscribers synchronously), and
writer tasks send them:

- status: coalesced per pod (only the newest status is sent), a JSON merge
  patch of pods/status carrying metadata.uid, so a pod re-created under the
  same name is never written with another pod's status;
- removal: after the pod's last status write, DELETE with
  gracePeriodSeconds 0 and a uid precondition, as the kubelet's status
  manager finishes a graceful deletion;
- Events: created, and their count bumped, in order by one writer.

It never binds pods: the API server's scheduler does (set_node_name raises).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from kubesim.contracts import ChangeCallback
from kubesim.nodeagent.client import MERGE_PATCH, ApiClient, ApiError, Obj
from kubesim.nodeagent.informer import Informer, Key

log = logging.getLogger(__name__)

WRITERS = 8  # status writes in flight at once
EVENTS_KEPT = 4096  # Events whose count we may still bump
EVENT_QUEUE = 10_000  # Events waiting to be sent before new ones are dropped
GONE_KEPT = 4096  # uids of pods we removed: late watch events about them are ignored
RETRY_SECONDS = 1.0


@dataclass
class _PodWrite:
    uid: str
    status: Obj | None = None
    remove: bool = False


class RemoteStore:
    """Implements kubesim.contracts.ObjectStore for one agent's nodes."""

    def __init__(self, client: ApiClient, node_names: list[str]) -> None:
        self._client = client
        # One watch per node: a field selector matches one value of spec.nodeName.
        self.pod_informers = [
            Informer(client, "/api/v1/pods", field_selector=f"spec.nodeName={name}")
            for name in node_names
        ]
        self._lookups = {
            "secrets": Informer(client, "/api/v1/secrets"),
            "configmaps": Informer(client, "/api/v1/configmaps"),
        }
        self._subscribers: list[ChangeCallback] = []
        self._writes: dict[Key, _PodWrite] = {}
        self._busy: set[Key] = set()
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._events: asyncio.Queue[tuple[str, str, Obj]] = asyncio.Queue(EVENT_QUEUE)
        self._recorded: OrderedDict[Key, Obj] = OrderedDict()
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()

    # -- life -------------------------------------------------------------------

    async def start(self) -> None:
        """List everything once (raising the first ApiError), then watch and write."""
        informers = [*self.pod_informers, *self._lookups.values()]
        await asyncio.gather(*(informer.list_once() for informer in informers))
        for informer in self.pod_informers:
            informer.subscribe(self._on_pod)
        for informer in informers:
            self._spawn(informer.run(), f"watch {informer.path}")
        for index in range(WRITERS):
            self._spawn(self._write_pods(), f"status writer {index}")
        self._spawn(self._write_events(), "event writer")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def drained(self) -> None:
        """Wait until every status write and removal queued so far was sent (callers bound it)."""
        while self._writes or self._busy:
            self._idle.clear()
            await self._idle.wait()

    @property
    def relists(self) -> int:
        return sum(informer.relists for informer in self.pod_informers)

    def _spawn(self, coro: object, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"kubesim-agent {name}")  # type: ignore[arg-type]
        task.add_done_callback(_logged)
        self._tasks.append(task)

    # -- the ObjectStore protocol -------------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        if resource == "events":
            found = self._recorded.get((namespace, name))
        elif resource == "pods":
            found = self._pod(namespace, name)
        elif resource in self._lookups:
            found = self._lookups[resource].cache.get((namespace, name))
        else:
            found = None
        return copy.deepcopy(found) if found is not None else None

    def list(self, resource: str, namespace: str | None = None) -> list[Obj]:
        if resource == "pods":
            items = [p for i in self.pod_informers for p in i.cache.values()]
        elif resource in self._lookups:
            items = list(self._lookups[resource].cache.values())
        else:
            items = []  # claims: bound by the server's PV controller, not by the kubelet
        return [
            copy.deepcopy(item)
            for item in items
            if namespace is None or (item.get("metadata") or {}).get("namespace") == namespace
        ]

    def subscribe(self, resource: str, callback: ChangeCallback) -> Callable[[], None]:
        if resource != "pods":
            return lambda: None  # nothing else changes under the kubelet's feet here
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def update_status(self, resource: str, namespace: str, name: str, status: Obj) -> Obj | None:
        pod = self._pod(namespace, name)
        if resource != "pods" or pod is None:
            return None
        uid = str(pod["metadata"].get("uid") or "")
        pod = {**pod, "status": copy.deepcopy(status)}
        self._set_pod(pod)
        self._want((namespace, name), uid).status = status
        self._tell("MODIFIED", pod)
        return copy.deepcopy(pod)

    def set_node_name(self, namespace: str, name: str, node_name: str) -> Obj | None:
        raise RuntimeError("the node agent never binds pods: the API server's scheduler does")

    def create(self, resource: str, namespace: str, obj: Obj) -> Obj:
        if resource != "events":
            raise RuntimeError(f"the node agent creates no {resource}")
        self._remember_event(namespace, obj)
        self._send_event("POST", namespace, obj)
        return copy.deepcopy(obj)

    def replace(self, resource: str, namespace: str, obj: Obj) -> Obj:
        if resource != "events":
            raise RuntimeError(f"the node agent replaces no {resource}")
        self._remember_event(namespace, obj)
        self._send_event("PATCH", namespace, obj)
        return copy.deepcopy(obj)

    def remove(self, resource: str, namespace: str, name: str) -> Obj | None:
        pod = self._pod(namespace, name)
        if resource != "pods" or pod is None:
            return None
        uid = str(pod["metadata"].get("uid") or "")
        self._want((namespace, name), uid).remove = True
        # Gone for the kubelet now, as kubesim's store would say; late watch
        # events about this pod (our own last status write) are ignored.
        self._gone[uid] = None
        while len(self._gone) > GONE_KEPT:
            self._gone.popitem(last=False)
        for informer in self.pod_informers:
            informer.cache.pop((namespace, name), None)
        self._tell("DELETED", pod)
        return copy.deepcopy(pod)

    # -- pods: cache and callbacks --------------------------------------------------

    def _pod(self, namespace: str, name: str) -> Obj | None:
        for informer in self.pod_informers:
            pod = informer.cache.get((namespace, name))
            if pod is not None:
                return pod
        return None

    def _set_pod(self, pod: Obj) -> None:
        key = (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
        for informer in self.pod_informers:
            if key in informer.cache:
                informer.cache[key] = pod

    def _on_pod(self, kind: str, pod: Obj) -> None:
        if str(pod["metadata"].get("uid")) in self._gone:
            return
        key = (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
        pending = self._writes.get(key)
        if kind != "DELETED" and pending is not None and pending.status is not None:
            # Our newer status is still on its way: keep it in what the kubelet sees.
            pod = {**pod, "status": copy.deepcopy(pending.status)}
            self._set_pod(pod)
        self._tell(kind, pod)

    def _tell(self, kind: str, pod: Obj) -> None:
        for callback in list(self._subscribers):
            try:
                callback(kind, copy.deepcopy(pod))
            except Exception:
                log.exception("kubelet callback failed for pod %s", pod["metadata"].get("name"))

    # -- pods: writers ----------------------------------------------------------------

    def _want(self, key: Key, uid: str) -> _PodWrite:
        write = self._writes.get(key)
        if write is None or write.uid != uid:
            write = self._writes[key] = _PodWrite(uid)
            self._queue.put_nowait(key)
        return write

    async def _write_pods(self) -> None:
        while True:
            key = await self._queue.get()
            if key in self._busy or key not in self._writes:
                continue  # the writer busy with it looks again when done
            write = self._writes.pop(key)
            self._busy.add(key)
            try:
                retry = not await self._send_pod(key, write)
            finally:
                self._busy.discard(key)
            if retry and key not in self._writes:
                self._writes[key] = write
                await asyncio.sleep(RETRY_SECONDS)
            if key in self._writes:
                self._queue.put_nowait(key)
            if not self._writes and not self._busy:
                self._idle.set()

    async def _send_pod(self, key: Key, write: _PodWrite) -> bool:
        """True when done (sent, or moot because the pod is gone); False to retry."""
        namespace, name = key
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        try:
            if write.status is not None:
                patch = {"metadata": {"uid": write.uid}, "status": write.status}
                await self._client.request(
                    "PATCH", path + "/status", body=patch, content_type=MERGE_PATCH
                )
                write.status = None
            if write.remove:
                options = {"gracePeriodSeconds": 0, "preconditions": {"uid": write.uid}}
                await self._client.request("DELETE", path, body=options)
            return True
        except ApiError as e:
            if e.status in (404, 409):
                return True  # gone, or another pod of that name now: nothing of ours to write
            if e.status == 422 or e.status == 400:
                log.error("pod %s/%s: the API refused our status: %s", namespace, name, e)
                return True
            log.warning("pod %s/%s: write failed (%s): retrying", namespace, name, e)
            return False

    # -- Events -------------------------------------------------------------------------

    def _remember_event(self, namespace: str, obj: Obj) -> None:
        key = (namespace, obj["metadata"]["name"])
        self._recorded[key] = copy.deepcopy(obj)
        self._recorded.move_to_end(key)
        while len(self._recorded) > EVENTS_KEPT:
            self._recorded.popitem(last=False)

    def _send_event(self, method: str, namespace: str, obj: Obj) -> None:
        try:
            self._events.put_nowait((method, namespace, copy.deepcopy(obj)))
        except asyncio.QueueFull:
            log.warning("too many Events waiting to be sent: %s dropped", obj.get("reason"))

    async def _write_events(self) -> None:
        while True:
            method, namespace, event = await self._events.get()
            path = f"/api/v1/namespaces/{namespace}/events"
            try:
                if method == "POST":
                    await self._client.request("POST", path, body=event)
                else:
                    bump = {k: event.get(k) for k in ("count", "lastTimestamp", "series")}
                    name = event["metadata"]["name"]
                    await self._client.request(
                        "PATCH", f"{path}/{name}", body=bump, content_type=MERGE_PATCH
                    )
            except ApiError as e:  # an Event is advice: never retried
                log.debug("event %s not written: %s", event.get("reason"), e)


def _logged(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("node agent task %s failed", task.get_name(), exc_info=task.exception())
