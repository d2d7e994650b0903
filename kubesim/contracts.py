"""The seam between kubesim's API server and its simulated kubelet.

The API server owns the object store; the kubelet only reacts to changes and
writes back status, events and final removals through this narrow protocol.
Neither side reaches into the other's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Obj = dict[str, Any]

# Called synchronously by the store after each change to a resource the
# subscriber asked for: (event type "ADDED" | "MODIFIED" | "DELETED", object).
ChangeCallback = Callable[[str, Obj], None]


class ObjectStore(Protocol):
    """What the kubelet may do to cluster state (resources are plural names: "pods")."""

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        """A deep copy of the stored object, or None."""

    def list(self, resource: str, namespace: str | None = None) -> list[Obj]:
        """Deep copies of every stored object of that resource."""

    def subscribe(self, resource: str, callback: ChangeCallback) -> Callable[[], None]:
        """Call back on every change; returns an unsubscribe function.

        Existing objects are NOT replayed: call list() first.
        """

    def update_status(self, resource: str, namespace: str, name: str, status: Obj) -> Obj | None:
        """Replace .status (and bump resourceVersion, emit MODIFIED); None if gone."""

    def set_node_name(self, namespace: str, name: str, node_name: str) -> Obj | None:
        """Bind a pod to a node (spec.nodeName), as the scheduler's binding does."""

    def create(self, resource: str, namespace: str, obj: Obj) -> Obj:
        """Create an object (used for Events); raises on conflict like the API."""

    def replace(self, resource: str, namespace: str, obj: Obj) -> Obj:
        """Replace an object wholesale (used to bump an aggregated Event's count)."""

    def remove(self, resource: str, namespace: str, name: str) -> Obj | None:
        """Finally remove an object after graceful deletion; emits DELETED."""


class PodUsage(Protocol):
    """Live resource usage of pods, for metrics.k8s.io."""

    def usage(self, namespace: str, name: str) -> dict[str, str] | None:
        """{"cpu": "12m", "memory": "34Mi"} measured from the pod's processes, or None."""


class Kubelet(Protocol):
    """The simulated node agent(s), as the cluster assembly drives it."""

    async def start(self, store: ObjectStore) -> None: ...

    async def stop(self) -> None:
        """Kill every pod process (SIGTERM then SIGKILL) and release addresses."""

    def set_paused(self, paused: bool) -> None:
        """Fault injection: a paused kubelet makes no progress on any pod."""

    @property
    def usage_source(self) -> PodUsage: ...


class PodLogs(Protocol):
    """Output of a pod's containers, for GET …/pods/{name}/log (optional).

    A kubelet that offers logs exposes one as a `log_source` attribute.
    """

    def logs(
        self, namespace: str, name: str, container: str | None, tail_lines: int | None
    ) -> str | None:
        """The container's output so far, or None if it has not started."""
