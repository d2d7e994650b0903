"""API semantics of the write verbs: defaults, validation, preconditions, deletion.

Sits between the HTTP handlers and the store: turns a request body into the
object to commit (kind/apiVersion from the URL, server-set defaults such as a
Pending pod or a Bound PVC), enforces what the real API server enforces
(namespace match, existing namespace, resourceVersion preconditions) and runs
graceful pod deletion. Never does I/O and never serialises anything.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kubesim import apply
from kubesim.patch import apply_patch
from kubesim.resources import CORE, ResourceType
from kubesim.status import ApiError, already_exists, bad_request, conflict, invalid, not_found
from kubesim.store import Entry, Store, deep_copy, now_rfc3339
from kubesim.validation import malformed_quantity, validate

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
        _pod_spec_defaults(spec)
        obj["metadata"]["generation"] = 1
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
        if isinstance(spec, dict):
            _service_defaults(spec)
        obj.setdefault("status", {"loadBalancer": {}})
    elif rt.kind == "Secret":
        obj.setdefault("type", "Opaque")
    elif rt.kind == "Event":
        # Clients sort by `lastTimestamp or eventTime`: both keys always exist,
        # as do the reporting fields (the real encoder writes them empty).
        for field in ("eventTime", "firstTimestamp", "lastTimestamp"):
            obj.setdefault(field, None)
        obj.setdefault("reportingComponent", "")
        obj.setdefault("reportingInstance", "")


def _pod_spec_defaults(spec: Obj) -> None:
    """The pod spec defaults and the admission plugins' additions, on create and update."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    _default_tolerations(spec)
    for container in spec.get("containers") or []:
        if isinstance(container, dict):
            image = str(container.get("image", ""))
            latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})


# What the DefaultTolerationSeconds admission plugin adds to every pod.
_DEFAULT_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
)  # fmt: skip


def _default_tolerations(spec: Obj) -> None:
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = []
    for default in _DEFAULT_TOLERATIONS:
        if not any(
            isinstance(t, dict)
            and t.get("key") == default["key"]
            and t.get("effect") in (None, "", "NoExecute")
            for t in tolerations
        ):
            tolerations.append(dict(default))
    spec["tolerations"] = tolerations


def _service_defaults(spec: Obj) -> None:
    """On create and update (a port a patch adds is defaulted too)."""
    if not spec.get("clusterIP"):
        spec["clusterIP"] = f"10.96.{secrets.randbelow(254) + 1}.{secrets.randbelow(254) + 1}"
    if spec["clusterIP"] != "None":
        spec.setdefault("type", "ClusterIP")
    spec["clusterIPs"] = [spec["clusterIP"]]
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])


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


def _decodable(rt: ResourceType, obj: Obj) -> None:
    """A body the real decoder refuses (a malformed quantity) is a 400."""
    if (problem := malformed_quantity(rt, obj)) is not None:
        raise bad_request(
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {problem}'
        )


def _patched_decodable(rt: ResourceType, patched: Obj) -> None:
    """After a patch the real server reports the same as a 422 on field `patch`."""
    if (problem := malformed_quantity(rt, patched)) is not None:
        quoted = json.dumps(patched, separators=(",", ":"))
        message = f"Invalid value: {json.dumps(quoted)}: {problem}"
        raise ApiError(
            422, "Invalid", f' "" is invalid: patch: {message}',
            {"causes": [{"reason": "FieldValueInvalid", "message": message, "field": "patch"}]},
        )  # fmt: skip


def create(store: Store, rt: ResourceType, namespace: str, body: Any, dry_run: bool) -> Obj:
    obj = _check_identity(rt, namespace, body)
    _decodable(rt, obj)
    if _is_core(rt, "Secret"):
        _encode_string_data(obj)
    meta = obj["metadata"]
    if rt.namespaced:
        meta["namespace"] = namespace  # validation compares against it (events)
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
        # The real dry run answers with the identity a create would have given.
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
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
    _decodable(rt, obj)
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
    _patched_decodable(rt, patched)
    patched = _check_identity(rt, namespace, patched)
    return _commit_update(store, rt, namespace, old, patched, subresource)


def server_side_apply(
    store: Store,
    rt: ResourceType,
    namespace: str,
    name: str,
    config: Obj,
    manager: str,
    force: bool,
) -> tuple[Entry, bool]:
    """Apply `config` as `manager`: the object and whether it was created."""
    given = (config.get("metadata") or {}).get("name")
    if given != name:
        raise bad_request(
            f"the name of the object ({given}) does not match the name on the URL ({name})"
        )
    if store.entry(rt.key, namespace, name) is None:
        created = create(store, rt, namespace, apply.new_object(config, manager), dry_run=False)
        return Entry(created), True
    old = _existing(store, rt, namespace, name)
    patched = _check_identity(rt, namespace, apply.apply(old.copy(), config, manager, force))
    return _commit_update(store, rt, namespace, old, patched, ""), False


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
    if _is_core(rt, "Secret"):
        _encode_string_data(obj)
    validate(rt, obj)
    if _is_core(rt, "Event"):
        _apply_defaults(rt, obj)
    if _is_core(rt, "Pod") and subresource != "status":
        _pod_update(old.obj, obj)
    if _is_core(rt, "Service") and subresource != "status" and isinstance(obj.get("spec"), dict):
        obj["spec"].setdefault("clusterIP", (old.obj.get("spec") or {}).get("clusterIP"))
        _service_defaults(obj["spec"])
    return store.update(rt.key, namespace, obj, check_version=False)


# What a pod update may change (the message is the real one, without its diff).
_POD_UPDATE_FORBIDDEN = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def _pod_update(old: Obj, new: Obj) -> None:
    """Defaults, the spec's immutability, and generation, as the pod strategy has them."""
    spec = new.get("spec")
    if not isinstance(spec, dict):
        spec = new["spec"] = {}
    _pod_spec_defaults(spec)
    old_spec = old.get("spec") or {}
    if _mutable_masked(old_spec) != _mutable_masked(spec):
        cause = {"reason": "FieldValueForbidden", "message": _POD_UPDATE_FORBIDDEN, "field": "spec"}
        raise invalid("Pod", new["metadata"].get("name", ""), [cause])
    generation = int(old["metadata"].get("generation") or 1)
    new["metadata"]["generation"] = generation + (1 if spec != old_spec else 0)


def _mutable_masked(spec: Obj) -> Obj:
    masked = deep_copy(spec)
    for field in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        masked.pop(field, None)
    for list_name in ("containers", "initContainers"):
        for container in masked.get(list_name) or []:
            if isinstance(container, dict):
                container.pop("image", None)
    return masked


def _encode_string_data(obj: Obj) -> None:
    """stringData is write-only: merged into data as base64; bad base64 is a 400."""
    data = obj.get("data")
    if data is not None and not isinstance(data, dict):
        raise bad_request("Secret data must be a map")
    for key, value in (data or {}).items():
        # Go's decoder skips line breaks (kustomize folds long values at 76
        # characters); the server answers the canonical, unbroken form.
        text = str(value).replace("\r", "").replace("\n", "")
        try:
            data[key] = base64.b64encode(base64.b64decode(text, validate=True)).decode()
        except (binascii.Error, ValueError) as e:
            raise bad_request(
                'Secret in version "v1" cannot be handled as a Secret: '
                f"illegal base64 data at input byte {_bad_base64_at(text)}"
            ) from e
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        merged = dict(data or {})
        for key, value in string_data.items():
            merged[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = merged


def _bad_base64_at(text: str) -> int:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    for i, char in enumerate(text):
        if char not in alphabet:
            return i
    return len(text) - len(text) % 4


def delete(
    store: Store, rt: ResourceType, namespace: str, name: str, grace: int | None
) -> tuple[Entry, bool]:
    """Delete now, or start a pod's graceful deletion; True when the object is gone."""
    old = _existing(store, rt, namespace, name)
    if _is_core(rt, "Pod"):
        return _delete_pod(store, namespace, old, grace)
    if _is_core(rt, "Namespace"):
        _empty_namespace(store, name)
        # The real namespace controller finishes later; kubesim at once, but the
        # answer is the real one: the namespace, Terminating.
        obj = old.copy()
        obj["metadata"]["deletionTimestamp"] = now_rfc3339()
        obj["status"] = {"phase": "Terminating"}
        return store.commit(rt.key, obj, "DELETED", old), True
    return store.delete(rt.key, namespace, name), True


def _delete_pod(store: Store, namespace: str, old: Entry, grace: int | None) -> tuple[Entry, bool]:
    spec = old.obj.get("spec") or {}
    meta = old.obj["metadata"]
    if grace is None:
        grace = int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))
    phase = (old.obj.get("status") or {}).get("phase")
    # As the real pod strategy: unscheduled or finished pods have nothing to stop.
    if grace <= 0 or not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
        # As the real registry: first an update to grace 0 (a MODIFIED), then the
        # removal of that object (DELETED).
        stamped = old.copy()
        stamped["metadata"]["deletionTimestamp"] = now_rfc3339()
        stamped["metadata"]["deletionGracePeriodSeconds"] = 0
        if not meta.get("deletionTimestamp"):  # a new generation once, when deletion starts
            stamped["metadata"]["generation"] = int(meta.get("generation") or 1) + 1
        modified = store.commit("pods", stamped, "MODIFIED", old)
        return store.commit("pods", modified.copy(), "DELETED", modified), True
    current = meta.get("deletionGracePeriodSeconds")
    if current is not None and grace >= current:
        return old, False  # already terminating at least as fast
    obj = old.copy()
    deadline = datetime.now(UTC) + timedelta(seconds=grace)
    obj["metadata"]["deletionTimestamp"] = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
    obj["metadata"]["deletionGracePeriodSeconds"] = grace
    # Starting a graceful deletion is a new generation of the pod.
    obj["metadata"]["generation"] = int(meta.get("generation") or 1) + 1
    return store.commit("pods", obj, "MODIFIED", old), False


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
