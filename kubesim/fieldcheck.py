"""Unknown fields of an object, found as kube-apiserver's strict decoding finds them.

kubectl sends `fieldValidation=Strict` once the OpenAPI documents say the
server supports it, and a real server then refuses a body naming a field its
schema lacks. This walks a body along the recorded OpenAPI v3 schema and
returns the paths of such fields (`spec.containers[0].imagee`), removing them
from the body only when asked. No I/O; it never decides what to answer.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
Schemas = dict[str, Obj]  # components.schemas of one OpenAPI v3 document


def unknown_fields(
    body: Any, schema: Obj, schemas: Schemas, *, sort: bool = False, drop: bool = False
) -> list[str]:
    """The dotted paths of fields the schema does not know, depth first in body order.

    sort=True walks keys sorted, as the real server meets them in a patched
    object (a Go map, re-encoded with sorted keys). drop=True also removes
    them from body, as the real server's decoder drops them.
    """
    found: list[tuple[str, Obj, str]] = []
    _walk(body, schema, schemas, "", found, sort)
    if drop:
        for _, parent, key in found:
            parent.pop(key, None)
    return [path for path, _, _ in found]


def _resolve(schema: Obj, schemas: Schemas) -> Obj:
    # Kubernetes wraps references as {"allOf": [{"$ref": …}], "default": …}.
    for _ in range(32):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            schema = schemas.get(ref.rsplit("/", 1)[-1], {})
            continue
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and "properties" not in schema:
            schema = all_of[0]
            continue
        break
    return schema


def decoding_error(unknown: list[str]) -> str:
    return "strict decoding error: " + ", ".join(f'unknown field "{path}"' for path in unknown)


def go_format(value: Any) -> str:
    """A decoded JSON value as Go's %v prints it (the real server quotes patches so)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        number = float(value)  # Go decodes every JSON number as float64
        if number.is_integer() and abs(number) < 1e21:
            return str(int(number))
        return repr(number)  # the shortest form, exponents as Go writes them (1e-05)
    return str(value)


def _walk(
    value: Any, schema: Obj, schemas: Schemas, path: str, found: list[tuple[str, Obj, str]],
    sort: bool,
) -> None:  # fmt: skip
    schema = _resolve(schema, schemas)
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        # No properties (RawExtension, FieldsV1) or preserve-unknown: anything goes.
        closed = (
            bool(properties)
            and not extra
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        )
        for key, item in sorted(value.items()) if sort else value.items():
            child = f"{path}.{key}" if path else key
            if properties and key in properties:
                _walk(item, properties[key], schemas, child, found, sort)
            elif isinstance(extra, dict):
                _walk(item, extra, schemas, child, found, sort)
            elif closed:
                found.append((child, value, key))
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _walk(item, items, schemas, f"{path}[{index}]", found, sort)
