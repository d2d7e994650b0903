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
    "finalizers": "",  # a set of strings: union
}
# The same list name under another parent merges by another key.
_PARENT_MERGE_KEYS: dict[tuple[str, str], str] = {
    ("spec", "ports"): "port",  # Service ports; container ports are by containerPort
}

# The real server's answer to any JSON patch it cannot apply (a failed test,
# a missing path): the details are in its log, not in the Status.
_JSON_PATCH_FAILED = "the server rejected our request due to an error in our request"


def _json_patch_failed() -> ApiError:
    return ApiError(422, "Invalid", _JSON_PATCH_FAILED, {})


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


def merge_key(field: str, parent: str) -> str | None:
    """The key a list named `field` (under `parent`) merges by; "" a set; None atomic."""
    return _PARENT_MERGE_KEYS.get((parent, field), _MERGE_KEYS.get(field))


def strategic_merge(target: Any, patch: Any, field: str = "", parent: str = "") -> Any:
    if isinstance(patch, list):
        key = merge_key(field, parent)
        return _merge_list(target if isinstance(target, list) else [], patch, field, key)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # directives: $setElementOrder below; $retainKeys ignored
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge(result.get(key), value, key, field)
    for key, order in patch.items():
        name = key.removeprefix("$setElementOrder/")
        if name != key and isinstance(result.get(name), list) and isinstance(order, list):
            result[name] = _in_order(result[name], order, merge_key(name, field))
    return result


def _in_order(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """kubectl's $setElementOrder: the listed elements in its order, then the rest."""
    if not key:
        return items
    wanted = [o.get(key) for o in order if isinstance(o, dict)]
    listed = {v: i for i, v in enumerate(wanted)}
    first = sorted(
        (i for i in items if isinstance(i, dict) and i.get(key) in listed),
        key=lambda i: listed[i.get(key)],
    )
    return first + [i for i in items if not (isinstance(i, dict) and i.get(key) in listed)]


def _merge_list(target: list[Any], patch: list[Any], field: str, key: str | None) -> list[Any]:
    """Merge by key: the patch's elements first, in its order, then the others kept."""
    if key is None:
        return copy.deepcopy(patch)
    if not key:
        merged_set = list(target)
        merged_set.extend(v for v in patch if v not in merged_set)
        return merged_set
    remaining = list(target)
    first: list[Any] = []
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"strategic merge: every element of {field} needs {key!r}")
        index = next(
            (
                i
                for i, old in enumerate(remaining)
                if isinstance(old, dict) and old.get(key) == item[key]
            ),
            None,
        )
        old = remaining.pop(index) if index is not None else None
        if item.get("$patch") == "delete":
            continue
        first.append(copy.deepcopy(item) if old is None else strategic_merge(old, item, ""))
    return first + remaining


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
                raise _json_patch_failed()
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
        raise _json_patch_failed() from e


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
        raise _json_patch_failed()
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
    raise _json_patch_failed()


def _index(text: str, size: int) -> int:
    if not text.isdigit() or int(text) >= size:
        raise _json_patch_failed()
    return int(text)
