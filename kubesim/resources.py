"""The table of resource types kubesim serves, for routing and discovery.

Core v1 kinds are listed with their verbs (kubectl reads these from
/api/v1); any other namespaced kind under /apis/{group}/{version} is served
generically and stored as written. Pure data: no I/O, no aiohttp.
"""

from __future__ import annotations

from dataclasses import dataclass

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
ALL_VERBS = READ + WRITE


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for core
    version: str
    resource: str  # plural, as in the URL
    kind: str
    namespaced: bool = True
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    # Kinds with a status subresource keep .status on PUT/PATCH of the object.
    has_status: bool = False
    # DELETE answers with the object (pods, PVCs, services) or a Success Status.
    delete_returns_object: bool = False

    @property
    def key(self) -> str:
        """The store key; versions of one group share storage."""
        return f"{self.group}/{self.resource}" if self.group else self.resource

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


CORE: dict[str, ResourceType] = {
    rt.resource: rt
    for rt in (
        ResourceType("", "v1", "namespaces", "Namespace", namespaced=False,
                     verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
                     short_names=("ns",), has_status=True, delete_returns_object=True),
        ResourceType("", "v1", "pods", "Pod", short_names=("po",), has_status=True,
                     delete_returns_object=True),
        ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim",
                     short_names=("pvc",), has_status=True, delete_returns_object=True),
        ResourceType("", "v1", "services", "Service", short_names=("svc",), has_status=True,
                     delete_returns_object=True,
                     verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
        ResourceType("", "v1", "secrets", "Secret"),
        ResourceType("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
        ResourceType("", "v1", "events", "Event", short_names=("ev",)),
        ResourceType("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    )
}  # fmt: skip

# Subresources of core kinds, announced in discovery.
CORE_SUBRESOURCES: dict[str, tuple[str, ...]] = {
    "pods/status": ("get", "patch", "update"),
    "pods/log": ("get",),
    "persistentvolumeclaims/status": ("get", "patch", "update"),
    "services/status": ("get", "patch", "update"),
}

# Groups announced in /apis; their kinds are stored generically.
GROUPS: dict[str, tuple[str, tuple[ResourceType, ...]]] = {
    "apps": ("v1", (
        ResourceType("apps", "v1", "deployments", "Deployment", short_names=("deploy",)),
        ResourceType("apps", "v1", "statefulsets", "StatefulSet", short_names=("sts",)),
        ResourceType("apps", "v1", "replicasets", "ReplicaSet", short_names=("rs",)),
        ResourceType("apps", "v1", "daemonsets", "DaemonSet", short_names=("ds",)),
    )),
    "rbac.authorization.k8s.io": ("v1", (
        ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    )),
    "networking.k8s.io": ("v1", (
        ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy",
                     short_names=("netpol",)),
        ResourceType("networking.k8s.io", "v1", "ingresses", "Ingress", short_names=("ing",)),
    )),
    "policy": ("v1", (
        ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget",
                     short_names=("pdb",)),
    )),
    "metrics.k8s.io": ("v1beta1", (
        ResourceType("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", verbs=("get", "list")),
    )),
}  # fmt: skip


def core_type(resource: str) -> ResourceType | None:
    return CORE.get(resource)


def group_type(group: str, version: str, resource: str, body_kind: str | None) -> ResourceType:
    """A known kind of the group, or a generic one named after the body or the URL."""
    known = GROUPS.get(group)
    if known:
        for rt in known[1]:
            if rt.resource == resource:
                return ResourceType(group, version, resource, rt.kind, short_names=rt.short_names)
    kind = body_kind or _kind_from_plural(resource)
    return ResourceType(group, version, resource, kind)


def _kind_from_plural(resource: str) -> str:
    if resource.endswith("ies"):
        stem = resource[:-3] + "y"
    elif resource.endswith(("ses", "xes")):
        stem = resource[:-2]
    else:
        stem = resource.removesuffix("s")
    return stem[:1].upper() + stem[1:]
