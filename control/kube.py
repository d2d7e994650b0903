"""What the control plane needs from the Kubernetes API, as a protocol over plain dicts.

control.k8s.KubeApi implements it with kubernetes_asyncio (the only place
that imports it); everything else in control/ is written against this
protocol and sees JSON-shaped dicts, never client models. Every method
raises only control.errors.KubeError subclasses.

`resource` is the plural REST name: "pods", "persistentvolumeclaims",
"events", "namespaces" (namespace "" for cluster-scoped kinds).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

Object = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK (ERROR is raised, never yielded)
    object: Object


@dataclass(frozen=True, slots=True)
class ObjectList:
    items: list[Object]
    resource_version: str


class Kube(Protocol):
    async def create(self, resource: str, namespace: str, body: Object) -> Object:
        """201: the created object. AlreadyExists on 409."""
        ...

    async def get(self, resource: str, namespace: str, name: str) -> Object: ...

    async def delete(
        self, resource: str, namespace: str, name: str, *, grace_seconds: int | None = None
    ) -> None:
        """Ask for deletion; NotFound when it is already gone."""
        ...

    async def patch(self, resource: str, namespace: str, name: str, patch: Object) -> Object:
        """A JSON merge patch (application/merge-patch+json)."""
        ...

    async def list(
        self,
        resource: str,
        namespace: str,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> ObjectList:
        """Every match (following `continue` pages) and the list's resourceVersion."""
        ...

    def watch(
        self,
        resource: str,
        namespace: str,
        *,
        resource_version: str,
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int = 30,
    ) -> AsyncIterator[WatchEvent]:
        """Changes after `resource_version` with bookmarks; ends when the server ends it.

        An ERROR event with 410 raises Expired; a broken stream raises KubeUnavailable.
        """
        ...
