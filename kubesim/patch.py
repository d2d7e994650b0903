"""The three PATCH flavours: JSON merge, strategic merge, and JSON patch.

Pure functions from (current object, patch document) to a new object; the
input is never mutated. Strategic merge knows the merge keys of the pod
lists podgate touches (containers, env, volumes, ports, conditions…) and
the `$patch: delete|replace` directives; any other list is replaced, as a
JSON merge patch would. Malformed patches raise `ApiError` 400/422.
"""

from __future__ import annotations

import copy
from typing import Any

from kubesim.status import ApiError, bad_request

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

# List fields merged element-wise by a key under strategic merge (from the
# Kubernetes type definitions: patchMergeKey).
_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "containerStatuses": "name",
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
    "tolerations": "key",
    "finalizers": "",  # a set of strings: union
}


def apply_patch(content_type: str, current: Obj, patch: Any) -> Obj:
    """Return the patched copy of `current`."""
    if content_type == JSON_PATCH:
        if not isinstance(patch, list):
            raise bad_request("json patch must be a list of operations")
        return json_patch(current, patch)
    if not isinstance(patch, dict):
        raise bad_request("patch body must be a JSON object")
    if content_type == MERGE_PATCH:
        return merge_patch(current, patch)
    return strategic_merge(current, patch)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    if isinstance(patch, list):
        return _merge_list(target if isinstance(target, list) else [], patch, field)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # $retainKeys, $setElementOrder: ordering hints we can ignore
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge(result.get(key), value, key)
    return result


def _merge_list(target: list[Any], patch: list[Any], field: str) -> list[Any]:
    if field not in _MERGE_KEYS:
        return copy.deepcopy(patch)
    key = _MERGE_KEYS[field]
    if not key:
        merged_set = list(target)
        merged_set.extend(v for v in patch if v not in merged_set)
        return merged_set
    merged = list(target)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"strategic merge: every element of {field} needs {key!r}")
        index = next(
            (
                i
                for i, old in enumerate(merged)
                if isinstance(old, dict) and old.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
        elif index is None:
            merged.append(copy.deepcopy(item))
        else:
            merged[index] = strategic_merge(merged[index], item, "")
    return merged


def json_patch(doc: Obj, operations: list[Any]) -> Obj:
    """RFC 6902 on a deep copy; a failed `test` is a 422 like the real server."""
    result: Any = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid json patch operation: {op!r}")
        kind = op["op"]
        path = _pointer(op["path"])
        if kind == "add":
            result = _add(result, path, copy.deepcopy(_value(op)))
        elif kind == "remove":
            result, _ = _remove(result, path)
        elif kind == "replace":
            result, _ = _remove(result, path)
            result = _add(result, path, copy.deepcopy(_value(op)))
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            value = copy.deepcopy(_get(result, source))
            if kind == "move":
                result, _ = _remove(result, source)
            result = _add(result, path, value)
        elif kind == "test":
            if _get(result, path) != _value(op):
                raise ApiError(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our request: "
                    f"test failed at {op['path']}",
                )
        else:
            raise bad_request(f"unknown json patch operation {kind!r}")
    return result


def _value(op: Obj) -> Any:
    if "value" not in op:
        raise bad_request(f"json patch operation {op['op']!r} needs a value")
    return op["value"]


def _pointer(text: Any) -> list[str]:
    if not isinstance(text, str) or (text and not text.startswith("/")):
        raise bad_request(f"invalid json pointer {text!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in text.split("/")[1:]]


def _parent(doc: Any, path: list[str]) -> Any:
    node = doc
    for part in path[:-1]:
        node = _child(node, part)
    return node


def _child(node: Any, part: str) -> Any:
    try:
        if isinstance(node, list):
            return node[int(part)]
        return node[part]
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise ApiError(
            422, "Invalid", f"the server rejected our request: path element {part!r} missing"
        ) from e


def _get(doc: Any, path: list[str]) -> Any:
    node = doc
    for part in path:
        node = _child(node, part)
    return node


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _parent(doc, path)
    last = path[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else _index(last, len(parent) + 1)
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise ApiError(422, "Invalid", f"the server rejected our request: cannot add at {last!r}")
    return doc


def _remove(doc: Any, path: list[str]) -> tuple[Any, Any]:
    if not path:
        raise bad_request("cannot remove the whole document")
    parent = _parent(doc, path)
    last = path[-1]
    if isinstance(parent, list):
        return doc, parent.pop(_index(last, len(parent)))
    if isinstance(parent, dict) and last in parent:
        return doc, parent.pop(last)
    raise ApiError(422, "Invalid", f"the server rejected our request: no value at {last!r}")


def _index(text: str, size: int) -> int:
    if not text.isdigit() or int(text) >= size:
        raise ApiError(422, "Invalid", f"the server rejected our request: bad index {text!r}")
    return int(text)
