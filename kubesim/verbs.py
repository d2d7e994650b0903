"""API semantics of the write verbs: defaults, validation, preconditions, deletion.

Sits between the HTTP handlers and the store: turns a request body into the
object to commit (kind/apiVersion from the URL, server-set defaults such as a
Pending pod or a Bound PVC), enforces what the real API server enforces
(namespace match, existing namespace, resourceVersion preconditions) and runs
graceful pod deletion. Never does I/O and never serialises anything.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kubesim.patch import apply_patch
from kubesim.resources import CORE, ResourceType
from kubesim.status import already_exists, bad_request, conflict, not_found
from kubesim.store import Entry, Store, deep_copy
from kubesim.validation import validate

Obj = dict[str, Any]

DEFAULT_GRACE_SECONDS = 30


def _is_core(rt: ResourceType, kind: str) -> bool:
    return rt.group == "" and rt.kind == kind


def _check_identity(rt: ResourceType, namespace: str, body: Any) -> Obj:
    """Fill kind/apiVersion from the URL; a differing namespace is a 400."""
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be a JSON object")
    obj = deep_copy(body)
    if obj.get("kind") not in (None, "", rt.kind):
        raise bad_request(f"the kind of the object ({obj['kind']}) does not match {rt.kind}")
    obj["kind"] = rt.kind
    obj["apiVersion"] = obj.get("apiVersion") or rt.api_version
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    body_ns = meta.get("namespace")
    if rt.namespaced and body_ns and body_ns != namespace:
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    return obj


def _require_namespace(store: Store, rt: ResourceType, namespace: str) -> None:
    if rt.namespaced and store.entry("namespaces", "", namespace) is None:
        raise not_found("namespaces", namespace)


def _apply_defaults(rt: ResourceType, obj: Obj) -> None:
    """Fields the real API server (and its admission) sets on create."""
    if rt.group != "":
        return
    spec = obj.setdefault("spec", {}) if rt.kind in ("Pod", "PersistentVolumeClaim") else None
    if rt.kind == "Pod" and isinstance(spec, dict):
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("securityContext", {})
        for container in spec.get("containers") or []:
            if isinstance(container, dict):
                image = str(container.get("image", ""))
                latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
                container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
                container.setdefault("terminationMessagePath", "/dev/termination-log")
                container.setdefault("terminationMessagePolicy", "File")
                container.setdefault("resources", {})
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}
    elif rt.kind == "PersistentVolumeClaim" and isinstance(spec, dict):
        # No provisioner to wait for: claims are Bound at once.
        spec.setdefault("volumeMode", "Filesystem")
        spec.setdefault("storageClassName", "standard")
        spec["volumeName"] = "pvc-" + secrets.token_hex(8)
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        obj["status"] = {
            "phase": "Bound",
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "capacity": {"storage": storage},
        }
    elif rt.kind == "Namespace":
        name = obj["metadata"].get("name", "")
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
    elif rt.kind == "Service":
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict) and spec.get("clusterIP") != "None":
            spec["clusterIP"] = f"10.96.{secrets.randbelow(254) + 1}.{secrets.randbelow(254) + 1}"
            spec.setdefault("type", "ClusterIP")
        obj.setdefault("status", {"loadBalancer": {}})
    elif rt.kind == "Secret":
        obj.setdefault("type", "Opaque")
    elif rt.kind == "Event":
        # Clients sort by `lastTimestamp or eventTime`: both keys always exist.
        for field in ("eventTime", "firstTimestamp", "lastTimestamp"):
            obj.setdefault(field, None)
        obj.setdefault("count", 1)
        obj.setdefault("type", "Normal")


def _qos_class(spec: Obj) -> str:
    requests_seen = limits_all = False
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    if containers:
        limits_all = True
    for c in containers:
        resources = c.get("resources") or {}
        requests_seen = requests_seen or bool(resources.get("requests") or resources.get("limits"))
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or limits
        if not ("cpu" in limits and "memory" in limits and requests == limits):
            limits_all = False
    if limits_all:
        return "Guaranteed"
    return "Burstable" if requests_seen else "BestEffort"


def create(store: Store, rt: ResourceType, namespace: str, body: Any, dry_run: bool) -> Obj:
    obj = _check_identity(rt, namespace, body)
    meta = obj["metadata"]
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = str(meta["generateName"]) + secrets.token_hex(3)[:5]
    validate(rt, obj)
    _require_namespace(store, rt, namespace)
    _apply_defaults(rt, obj)
    if dry_run:
        if store.entry(rt.key, namespace if rt.namespaced else "", meta["name"]) is not None:
            raise already_exists(rt.resource, meta["name"], rt.group)
        if rt.namespaced:
            meta["namespace"] = namespace
        return obj
    return store.insert(rt.key, namespace if rt.namespaced else "", obj).obj


def _existing(store: Store, rt: ResourceType, namespace: str, name: str) -> Entry:
    entry = store.entry(rt.key, namespace, name)
    if entry is None:
        raise not_found(rt.resource, name, rt.group)
    return entry


def replace(
    store: Store, rt: ResourceType, namespace: str, name: str, body: Any, subresource: str
) -> Entry:
    obj = _check_identity(rt, namespace, body)
    if obj["metadata"].get("name") != name:
        raise bad_request(
            f"the name of the object ({obj['metadata'].get('name')}) does not match the name "
            f"on the URL ({name})"
        )
    old = _existing(store, rt, namespace, name)
    given = obj["metadata"].get("resourceVersion")
    if given and given != old.obj["metadata"]["resourceVersion"]:
        raise conflict(rt.resource, name, rt.group)
    return _commit_update(store, rt, namespace, old, obj, subresource)


def patch(
    store: Store,
    rt: ResourceType,
    namespace: str,
    name: str,
    content_type: str,
    document: Any,
    subresource: str,
    check: Callable[[Any], None] | None = None,
) -> Entry:
    """check, when given, sees the patched object before anything else does."""
    old = _existing(store, rt, namespace, name)
    if isinstance(document, dict):
        given = (document.get("metadata") or {}).get("resourceVersion")
        if given and given != old.obj["metadata"]["resourceVersion"]:
            raise conflict(rt.resource, name, rt.group)
    patched = apply_patch(content_type, old.copy(), document)
    if check is not None:
        check(patched)
    if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
        raise bad_request("the patch removed the object's metadata")
    if patched["metadata"].get("name") != name:
        raise bad_request("a patch may not change metadata.name")
    patched = _check_identity(rt, namespace, patched)
    return _commit_update(store, rt, namespace, old, patched, subresource)


def _commit_update(
    store: Store, rt: ResourceType, namespace: str, old: Entry, obj: Obj, subresource: str
) -> Entry:
    if subresource == "status":
        # Writing the status subresource changes .status and nothing else.
        status = obj.get("status")
        obj = old.copy()
        obj["status"] = status
    elif rt.has_status:
        obj["status"] = deep_copy(old.obj.get("status") or {})
    validate(rt, obj)
    if rt.kind == "Event" and rt.group == "":
        _apply_defaults(rt, obj)
    return store.update(rt.key, namespace, obj, check_version=False)


def delete(
    store: Store, rt: ResourceType, namespace: str, name: str, grace: int | None
) -> tuple[Entry, bool]:
    """Delete now, or start a pod's graceful deletion; True when the object is gone."""
    old = _existing(store, rt, namespace, name)
    if _is_core(rt, "Pod"):
        return _delete_pod(store, namespace, old, grace)
    if _is_core(rt, "Namespace"):
        _empty_namespace(store, name)
    return store.delete(rt.key, namespace, name), True


def _delete_pod(store: Store, namespace: str, old: Entry, grace: int | None) -> tuple[Entry, bool]:
    spec = old.obj.get("spec") or {}
    meta = old.obj["metadata"]
    if grace is None:
        grace = int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))
    phase = (old.obj.get("status") or {}).get("phase")
    # As the real pod strategy: unscheduled or finished pods have nothing to stop.
    if grace <= 0 or not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
        # As the real registry, a pod going at once is still deleted gracefully with
        # grace 0: first marked (watchers see MODIFIED with deletionTimestamp now and
        # deletionGracePeriodSeconds 0), then removed (DELETED, the marked object).
        marked = old.copy()
        marked["metadata"]["deletionTimestamp"] = _now_seconds()
        marked["metadata"]["deletionGracePeriodSeconds"] = 0
        store.commit("pods", marked, "MODIFIED", old)
        return store.delete("pods", namespace, meta["name"]), True
    current = meta.get("deletionGracePeriodSeconds")
    if current is not None and grace >= current:
        return old, False  # already terminating at least as fast
    obj = old.copy()
    deadline = datetime.now(UTC) + timedelta(seconds=grace)
    obj["metadata"]["deletionTimestamp"] = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
    obj["metadata"]["deletionGracePeriodSeconds"] = grace
    return store.commit("pods", obj, "MODIFIED", old), False


def _now_seconds() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _empty_namespace(store: Store, namespace: str) -> None:
    """Deleting a namespace deletes what is in it (pods gracefully)."""
    keys = {rt.key for rt in CORE.values() if rt.namespaced}
    keys.update(k for k in store.resource_keys() if "/" in k)
    for key in keys:
        for entry in list(store.entries(key, namespace)):
            name = entry.obj["metadata"]["name"]
            if key == "pods":
                _delete_pod(store, namespace, entry, None)
            else:
                store.delete(key, namespace, name)
