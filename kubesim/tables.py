"""Server-side printing: `meta.k8s.io/v1 Table` answers, which `kubectl get` asks for.

Columns follow the real server's printers for pods, events, namespaces and
claims; every other kind gets NAME and AGE. Pure: objects in, dict out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]

TABLE_ACCEPT = "as=Table"


def wants_table(accept: str) -> bool:
    return TABLE_ACCEPT in accept and "g=meta.k8s.io" in accept


def _age(timestamp: str | None, now: datetime) -> str:
    if not timestamp:
        return "<unknown>"
    then = datetime.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _pod_state(pod: Obj) -> str:
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        for key in ("waiting", "terminated"):
            if (state.get(key) or {}).get("reason"):
                return str(state[key]["reason"])
    return str(status.get("reason") or status.get("phase") or "Unknown")


def _pod_cells(pod: Obj, now: datetime) -> list[Any]:
    status = pod.get("status") or {}
    containers = (pod.get("spec") or {}).get("containers") or []
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    return [
        pod["metadata"]["name"], f"{ready}/{len(containers)}", _pod_state(pod), restarts,
        _age(pod["metadata"].get("creationTimestamp"), now),
        status.get("podIP") or "<none>", (pod.get("spec") or {}).get("nodeName") or "<none>",
    ]  # fmt: skip


def _event_cells(event: Obj, now: datetime) -> list[Any]:
    involved = event.get("involvedObject") or {}
    last = event.get("lastTimestamp") or event.get("eventTime")
    return [
        _age(last, now), event.get("type", ""), event.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        event.get("message", ""),
    ]  # fmt: skip


def _column(name: str, kind: str = "string", priority: int = 0) -> Obj:
    fmt = "name" if name == "Name" else ""
    return {"name": name, "type": kind, "format": fmt, "description": "", "priority": priority}


_COLUMNS: dict[str, list[Obj]] = {
    "Pod": [_column("Name"), _column("Ready"), _column("Status"),
            _column("Restarts", "integer"), _column("Age"),
            _column("IP", priority=1), _column("Node", priority=1)],
    "Event": [_column("Last Seen"), _column("Type"), _column("Reason"), _column("Object"),
              _column("Message")],
    "Namespace": [_column("Name"), _column("Status"), _column("Age")],
    "PersistentVolumeClaim": [_column("Name"), _column("Status"), _column("Volume"),
                              _column("Capacity"), _column("Access Modes"), _column("Age")],
}  # fmt: skip
_DEFAULT_COLUMNS = [_column("Name"), _column("Age")]


def _cells(kind: str, obj: Obj, now: datetime) -> list[Any]:
    meta = obj["metadata"]
    age = _age(meta.get("creationTimestamp"), now)
    status = obj.get("status") or {}
    if kind == "Pod":
        return _pod_cells(obj, now)
    if kind == "Event":
        return _event_cells(obj, now)
    if kind == "Namespace":
        return [meta["name"], status.get("phase", ""), age]
    if kind == "PersistentVolumeClaim":
        modes = ",".join(
            {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX"}.get(m, m)
            for m in status.get("accessModes") or []
        )
        capacity = (status.get("capacity") or {}).get("storage", "")
        volume = (obj.get("spec") or {}).get("volumeName", "")
        return [meta["name"], status.get("phase", ""), volume, capacity, modes, age]
    return [meta["name"], age]


def table(kind: str, objects: list[Obj], list_meta: Obj, include_object: str) -> Obj:
    now = datetime.now(UTC)
    rows = []
    for obj in objects:
        if include_object == "Object":
            row_object: Obj | None = obj
        elif include_object == "None":
            row_object = None
        else:
            row_object = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                          "metadata": obj["metadata"]}  # fmt: skip
        row: Obj = {"cells": _cells(kind, obj, now)}
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": _COLUMNS.get(kind, _DEFAULT_COLUMNS),
        "rows": rows,
    }
