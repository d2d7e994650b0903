"""Server-side apply: field ownership per manager, conflicts, force.

A subset of the real structured-merge-diff. Each applier's fields are kept
in the object's `metadata.managedFields` (operation Apply, FieldsV1), so they
live and die with the object. Lists merge by the strategic-merge keys of
kubesim.patch (elsewhere a list is one atomic field). What kubesim does not
track: fields written by create/update/patch (operation Update) own nothing,
so an apply never conflicts with them. Pure: no I/O, never mutates inputs.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from kubesim.patch import merge_key, strategic_merge
from kubesim.status import ApiError, bad_request
from kubesim.store import deep_copy, now_rfc3339

Obj = dict[str, Any]
Path = tuple[str, ...]  # FieldsV1 segments: "f:name" or 'k:{"name":"main"}'

APPLY_PATCH = "application/apply-patch+yaml"

# Identity fields an apply names but nobody owns.
_UNOWNED: set[Path] = {("f:apiVersion",), ("f:kind",), ("f:metadata", "f:name"),
                       ("f:metadata", "f:namespace")}  # fmt: skip


def parse(document: bytes) -> Obj:
    """The applied configuration (YAML, JSON being YAML too)."""
    try:
        config = yaml.safe_load(document)
    except yaml.YAMLError as e:
        raise bad_request(f"error decoding YAML: {e}") from e
    if not isinstance(config, dict):
        raise bad_request("the applied configuration must be an object")
    return config


def field_manager_required() -> ApiError:
    message = "Required value: is required for apply patch"
    cause = {"reason": "FieldValueRequired", "message": message, "field": "fieldManager"}
    return ApiError(
        422, "Invalid",
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
        "is required for apply patch",
        {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [cause]},
    )  # fmt: skip


def leaf_paths(obj: Any, prefix: Path = (), field: str = "", parent: str = "") -> set[Path]:
    """The fields a configuration sets, as FieldsV1 paths to leaves."""
    if isinstance(obj, dict) and obj:
        paths: set[Path] = set()
        for name, value in obj.items():
            paths |= leaf_paths(value, (*prefix, f"f:{name}"), name, field)
        return paths
    if isinstance(obj, list) and obj:
        key = merge_key(field, parent)
        if key:
            paths = set()
            for item in obj:
                if isinstance(item, dict) and key in item:
                    segment = "k:" + json.dumps({key: item[key]}, separators=(",", ":"))
                    paths |= leaf_paths(item, (*prefix, segment)) or {(*prefix, segment)}
            return paths
    return {prefix} - _UNOWNED if prefix else set()


def _value_at(obj: Any, path: Path) -> tuple[bool, Any]:
    node = obj
    for segment in path:
        if segment.startswith("f:") and isinstance(node, dict) and segment[2:] in node:
            node = node[segment[2:]]
        elif segment.startswith("k:") and isinstance(node, list):
            ((key, value),) = json.loads(segment[2:]).items()
            found = [i for i in node if isinstance(i, dict) and i.get(key) == value]
            if not found:
                return False, None
            node = found[0]
        else:
            return False, None
    return True, node


def _remove_at(obj: Any, path: Path) -> None:
    present, parent = _value_at(obj, path[:-1])
    if not present:
        return
    last = path[-1]
    if last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
    elif last.startswith("k:") and isinstance(parent, list):
        ((key, value),) = json.loads(last[2:]).items()
        parent[:] = [i for i in parent if not (isinstance(i, dict) and i.get(key) == value)]


def display(path: Path) -> str:
    """The path as the real conflict message writes it: .data.a, .spec.containers[name="main"]."""
    text = ""
    for segment in path:
        if segment.startswith("f:"):
            text += "." + segment[2:]
        else:
            inner = ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(segment[2:]).items())
            text += f"[{inner}]"
    return text


def _to_fields(paths: set[Path]) -> Obj:
    """FieldsV1: nested "f:"/"k:" keys; a list element owns itself too (".")."""
    tree: Obj = {}
    for path in sorted(paths):
        node = tree
        for segment in path:
            node = node.setdefault(segment, {})
            if segment.startswith("k:"):
                node.setdefault(".", {})
    return tree


def _from_fields(tree: Obj, prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for segment, sub in tree.items():
        if segment == ".":
            continue
        children = _from_fields(sub, (*prefix, segment)) if sub else set()
        paths |= children or {(*prefix, segment)}
    return paths


def _owners(live: Obj) -> dict[str, set[Path]]:
    owners: dict[str, set[Path]] = {}
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if isinstance(entry, dict) and entry.get("operation") == "Apply":
            owners[str(entry.get("manager"))] = _from_fields(entry.get("fieldsV1") or {})
    return owners


def _managed_fields(owners: dict[str, set[Path]], api_version: str) -> list[Obj]:
    return [
        {"manager": manager, "operation": "Apply", "apiVersion": api_version,
         "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": _to_fields(paths)}
        for manager, paths in owners.items() if paths
    ]  # fmt: skip


def _conflict(conflicts: list[tuple[str, Path]]) -> ApiError:
    causes = [{"reason": "FieldManagerConflict", "message": f'conflict with "{manager}"',
               "field": display(path)} for manager, path in conflicts]  # fmt: skip
    if len(conflicts) == 1:
        manager, path = conflicts[0]
        summary = f'conflict with "{manager}": {display(path)}'
    else:
        lines: list[str] = []
        for manager in dict.fromkeys(m for m, _ in conflicts):
            lines.append(f'conflicts with "{manager}":')
            lines += [f"- {display(p)}" for m, p in conflicts if m == manager]
        summary = "\n".join(lines)
    plural = "conflict" if len(conflicts) == 1 else "conflicts"
    return ApiError(
        409, "Conflict", f"Apply failed with {len(conflicts)} {plural}: {summary}",
        {"causes": causes},
    )  # fmt: skip


def new_object(config: Obj, manager: str) -> Obj:
    """What an apply to a missing object creates (the create path adds the rest)."""
    obj = deep_copy(config)
    owners = {manager: leaf_paths(config)}
    obj.setdefault("metadata", {})["managedFields"] = _managed_fields(
        owners, str(config.get("apiVersion", ""))
    )
    return obj


def apply(live: Obj, config: Obj, manager: str, force: bool) -> Obj:
    """The object after `manager` applies `config` to `live`; 409 on conflicts unless forced."""
    owners = _owners(live)
    applied = leaf_paths(config)
    previous = owners.get(manager, set())
    conflicts: list[tuple[str, Path]] = []
    for path in sorted(applied):
        _, wanted = _value_at(config, path)
        present, current = _value_at(live, path)
        if present and current == wanted:
            continue  # the same value: shared, never a conflict
        conflicts += [(other, path) for other, paths in owners.items()
                      if other != manager and path in paths]  # fmt: skip
    if conflicts and not force:
        raise _conflict(conflicts)
    for other, path in conflicts:
        owners[other].discard(path)
    result = strategic_merge(deep_copy(live), config)
    # Fields this manager applied before, left out now and owned by no one else, go.
    for path in previous - applied:
        if not any(path in paths for other, paths in owners.items() if other != manager):
            _remove_at(result, path)
    owners[manager] = applied
    result["metadata"]["managedFields"] = _managed_fields(
        owners, str(config.get("apiVersion", live.get("apiVersion", "")))
    )
    return result
