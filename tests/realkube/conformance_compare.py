"""Field-by-field comparison of two servers' answers, and the allowed differences.

`normalise` masks what differs between any two runs of one server (uids,
resourceVersions, times, generated addresses, continue tokens); what is left
must be equal, except the ALLOWED differences below, each with its reason.
`differences` lists every remaining mismatch as "step: path: kubesim …,
real …".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from conformance_client import Answer

Obj = dict[str, Any]

# Values that change from run to run on one server: masked, present-ness kept.
VOLATILE = {
    "uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "time",
    "lastTransitionTime", "clusterIP", "clusterIPs", "continue", "firstTimestamp",
    "lastTimestamp", "eventTime",
}  # fmt: skip
_NUMBER = re.compile(r"\d+")
_QUOTED_OBJECT = re.compile(r'Invalid value: "\{.*\}": ')
_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalise(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        out = {k: normalise(v, k) for k, v in value.items()}
        # Expired messages quote resourceVersions.
        if value.get("reason") == "Expired" and isinstance(out.get("message"), str):
            out["message"] = _NUMBER.sub("N", out["message"])
        return out
    if isinstance(value, list):
        if key == "clusterIPs":
            return "<clusterIPs>"
        return [normalise(v) for v in value]
    if key in VOLATILE and value not in (None, ""):
        return f"<{key}>"
    if key == "message" and isinstance(value, str):
        # Messages quote uids (preconditions); a pod update's quotes Go's struct diff.
        value = _UID.sub("<uid>", value).split("\n@@")[0]
        # A patch refused after merging quotes the whole patched object.
        value = _QUOTED_OBJECT.sub("Invalid value: <the patched object>: ", value)
        for marker in MESSAGE_CUTS:
            if marker in value:
                value = value.split(marker)[0] + marker + "…"
        return value
    return value


# Messages that end in a parser's own words (Go's encoding/json vs Python's):
# compared up to the marker only.
MESSAGE_CUTS = ("json parse error: ", "continue key is not valid: ")


def _collapse_bookmarks(events: list[Any]) -> list[Any]:
    """Consecutive BOOKMARKs as one: how many a server sends depends on its timers."""
    out: list[Any] = []
    for event in events:
        repeated = out and out[-1].get("type") == "BOOKMARK"
        if repeated and isinstance(event, dict) and event.get("type") == "BOOKMARK":
            continue
        out.append(event)
    return out


def _service_account_volume(obj: Obj) -> None:
    """Take out the ServiceAccount admission plugin's token volume and its mounts."""
    spec = obj.get("spec")
    if obj.get("kind") not in (None, "Pod") or not isinstance(spec, dict):
        return
    _drop_named(spec, "volumes")
    for container in spec.get("containers") or []:
        _drop_named(container, "volumeMounts")


def _drop_named(parent: Obj, field: str) -> None:
    items = parent.get(field)
    if isinstance(items, list):
        kept = [i for i in items if not str(i.get("name", "")).startswith("kube-api-access-")]
        if kept:
            parent[field] = kept
        else:
            del parent[field]


def _claim_binding(obj: Obj) -> None:
    """Take out what binding (or its absence) and the pvc-protection finalizer decide."""
    if obj.get("kind") != "PersistentVolumeClaim" and "accessModes" not in (obj.get("spec") or {}):
        return
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    for field in ("finalizers", "deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(field, None)
    for field in ("storageClassName", "volumeName"):
        spec.pop(field, None)
    obj.pop("status", None)


def _update_managers(obj: Obj) -> None:
    """managedFields: only the Apply entries, as a set (kubesim records no Update entries)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return
    applied = [
        {"manager": e.get("manager"), "fieldsV1": e.get("fieldsV1")}
        for e in meta.pop("managedFields") or []
        if e.get("operation") == "Apply"
    ]
    if applied:
        meta["managedFields"] = sorted(applied, key=lambda e: str(e["manager"]))


# Differences allowed, each with its reason (tests/realkube/README.md lists them
# too). Each rewrites one object of an answer, on both sides alike.
ALLOWED: dict[str, Callable[[Obj], None]] = {
    "kubesim issues no ServiceAccount tokens, so it adds no kube-api-access-* projected "
    "volume and mount to pods": _service_account_volume,
    "kubesim has no claim provisioner or pvc-protection controller: claims are Bound at "
    "create (the real server: Pending until a provisioner binds them) and go at once on "
    "delete (the real server keeps the finalizer until no pod uses the claim)": _claim_binding,
    "kubesim records managedFields only for server-side apply (the field ownership that "
    "decides apply conflicts); the real server also records every create/update/patch "
    "as an Update entry": _update_managers,
}


def _strip_allowed(body: Any) -> Any:
    for rewrite in ALLOWED.values():
        for root in _roots(body):
            if isinstance(root, dict):
                rewrite(root)
    return body


def _roots(body: Any) -> list[Any]:
    """The objects of an answer: itself, list items, watch event objects."""
    if isinstance(body, list):
        return [e.get("object") for e in body if isinstance(e, dict)]
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return [body, *body["items"]]
    return [body]


def prepare(answer: Answer) -> Any:
    body = normalise(json.loads(json.dumps(answer.body)))
    if isinstance(body, list):
        body = _collapse_bookmarks(body)
    return _strip_allowed(body)


# Steps whose answers cannot be compared, and why. test_conformance checks each
# side of these on its own.
COMPACTION = (
    "the real server answers continue tokens and watches from its watch cache, "
    "which etcd compaction does not shorten: it holds every change since the "
    "apiserver started, and drops old ones only when full and older than 75 s, "
    "so a real 410 cannot be forced in bounded time"
)
UNCOMPARED: dict[str, str] = {
    "list: continue after compaction": COMPACTION,
    "watch: from a compacted resourceVersion": COMPACTION,
    "watch: from resourceVersion 1": COMPACTION,
}


def differences(sim: list[Answer], real: list[Answer]) -> list[str]:
    found: list[str] = []
    if [a.step for a in sim] != [a.step for a in real]:
        return ["the two runs took different steps"]
    for a, b in zip(sim, real, strict=True):
        if a.step in UNCOMPARED:
            continue
        if a.code != b.code:
            found.append(f"{a.step}: code: kubesim {a.code}, real {b.code}")
        _compare(a.step, "", prepare(a), prepare(b), found)
    return found


def _compare(step: str, path: str, a: Any, b: Any, found: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            where = f"{path}.{key}" if path else key
            if key not in a:
                found.append(f"{step}: {where}: kubesim lacks it, real {_short(b[key])}")
            elif key not in b:
                found.append(f"{step}: {where}: real lacks it, kubesim {_short(a[key])}")
            else:
                _compare(step, where, a[key], b[key], found)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _compare(step, f"{path}[{i}]", x, y, found)
    elif a != b:
        found.append(f"{step}: {path or '(body)'}: kubesim {_short(a)}, real {_short(b)}")


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 300 else text[:300] + "…"
