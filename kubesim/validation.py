"""Object validation: the 422 Invalid answers of the real API server.

Checks names (DNS-1123), label values, pods without containers, container
resources that are not quantities (or requests above limits), container
ports out of range, grace periods that are not whole seconds and events
without an involvedObject, and reports each bad field as a cause. Pure:
takes an object, raises `ApiError` or returns; never changes the object.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kubesim.quantities import InvalidQuantity, parse_quantity
from kubesim.resources import ResourceType
from kubesim.status import invalid

Obj = dict[str, Any]
Cause = dict[str, str]

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(rf"^{_LABEL}$")
_DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# Kinds whose names must be a single DNS-1123 label rather than a subdomain.
_LABEL_NAMED = {"Namespace", "Service"}


def _required(field: str, detail: str = "") -> Cause:
    message = "Required value" + (f": {detail}" if detail else "")
    return {"reason": "FieldValueRequired", "message": message, "field": field}


def _bad_value(field: str, value: Any, detail: str) -> Cause:
    # Go quotes the value (%q for strings): JSON's quoting is the same for these.
    return {
        "reason": "FieldValueInvalid",
        "message": f"Invalid value: {json.dumps(value)}: {detail}",
        "field": field,
    }


def name_causes(kind: str, name: Any) -> list[Cause]:
    if not name:
        return [_required("metadata.name", "name or generateName is required")]
    if not isinstance(name, str):
        return [_bad_value("metadata.name", name, "must be a string")]
    if kind in _LABEL_NAMED:
        if len(name) > 63 or not _DNS1123_LABEL.match(name):
            return [
                _bad_value(
                    "metadata.name",
                    name,
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                    "characters or '-', and must start and end with an alphanumeric "
                    "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                )
            ]
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return [
            _bad_value(
                "metadata.name",
                name,
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric "
                "character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        ]
    return []


def _label_causes(meta: Obj) -> list[Cause]:
    causes: list[Cause] = []
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [_bad_value("metadata.labels", labels, "must be a map of strings")]
    for value in labels.values():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                _bad_value(
                    "metadata.labels",
                    value,
                    "a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                    "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                )
            )
    return causes


def _pod_causes(spec: Any) -> list[Cause]:
    if not isinstance(spec, dict):
        return [_required("spec")]
    containers = spec.get("containers")
    if not containers or not isinstance(containers, list):
        return [_required("spec.containers")]
    causes: list[Cause] = []
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int) or grace < 0):
        causes.append(
            _bad_value(
                "spec.terminationGracePeriodSeconds",
                grace,
                "must be an integer greater than or equal to 0",
            )
        )
    seen: set[str] = set()
    for i, container in enumerate(containers):
        where = f"spec.containers[{i}]"
        if not isinstance(container, dict):
            causes.append(_bad_value(where, container, "must be an object"))
            continue
        name = container.get("name")
        if not name:
            causes.append(_required(f"{where}.name"))
        elif not isinstance(name, str) or not _DNS1123_LABEL.match(name) or len(name) > 63:
            causes.append(_bad_value(f"{where}.name", name, "must be a DNS-1123 label"))
        elif name in seen:
            causes.append(
                {"reason": "FieldValueDuplicate", "message": f"Duplicate value: {name!r}",
                 "field": f"{where}.name"}
            )  # fmt: skip
        else:
            seen.add(name)
        if not container.get("image"):
            causes.append(_required(f"{where}.image"))
        causes += _resource_causes(f"{where}.resources", container.get("resources"))
        causes += _port_causes(f"{where}.ports", container.get("ports"))
    return causes


def _port_causes(where: str, ports: Any) -> list[Cause]:
    if ports is None:
        return []
    if not isinstance(ports, list):
        return [_bad_value(where, ports, "must be a list of ports")]
    causes: list[Cause] = []
    for i, port in enumerate(ports):
        number = port.get("containerPort") if isinstance(port, dict) else None
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
            causes.append(
                _bad_value(
                    f"{where}[{i}].containerPort", number, "must be between 1 and 65535, inclusive"
                )
            )
    return causes


def _resource_causes(where: str, resources: Any) -> list[Cause]:
    """Requests and limits must be maps of non-negative quantities, requests <= limits."""
    if resources is None:
        return []
    if not isinstance(resources, dict):
        return [_bad_value(where, resources, "must be an object")]
    causes: list[Cause] = []
    amounts: dict[str, dict[str, Any]] = {}
    for part in ("limits", "requests"):
        given = resources.get(part)
        amounts[part] = {}
        if given is None:
            continue
        if not isinstance(given, dict):
            causes.append(_bad_value(f"{where}.{part}", given, "must be a map of quantities"))
            continue
        for resource, value in given.items():
            field = f"{where}.{part}[{resource}]"
            try:
                amount = parse_quantity(value)
            except InvalidQuantity as e:
                causes.append(_bad_value(field, value, str(e)))
                continue
            if amount < 0:
                causes.append(_bad_value(field, value, "must be greater than or equal to 0"))
            else:
                amounts[part][resource] = amount
    for resource, request in amounts["requests"].items():
        limit = amounts["limits"].get(resource)
        if limit is not None and request > limit:
            causes.append(
                _bad_value(
                    f"{where}.requests",  # the real field names no resource here
                    resources["requests"][resource],
                    f"must be less than or equal to {resource} limit of "
                    f"{resources['limits'][resource]}",
                )
            )
    return causes


def _event_causes(event: Obj) -> list[Cause]:
    """The event must name an object of its own namespace (a missing one has none)."""
    involved = event.get("involvedObject")
    if not isinstance(involved, dict):
        involved = {}
    namespace = (event.get("metadata") or {}).get("namespace")
    given = involved.get("namespace") or ""
    if namespace and given != namespace:
        return [_bad_value("involvedObject.namespace", given, "does not match event.namespace")]
    return []


def malformed_quantity(rt: ResourceType, obj: Any) -> str | None:
    """What the real decoder says of a pod's first resource that is no quantity, if any.

    The real server refuses such a pod while decoding, before validating it.
    """
    if not (rt.group == "" and rt.kind == "Pod" and isinstance(obj, dict)):
        return None
    spec = obj.get("spec")
    for list_name in ("initContainers", "containers"):
        containers = spec.get(list_name) if isinstance(spec, dict) else None
        for container in containers if isinstance(containers, list) else []:
            resources = container.get("resources") if isinstance(container, dict) else None
            for part in ("limits", "requests"):
                given = resources.get(part) if isinstance(resources, dict) else None
                for value in given.values() if isinstance(given, dict) else []:
                    try:
                        parse_quantity(value)
                    except InvalidQuantity as e:
                        return str(e)
    return None


def validate(rt: ResourceType, obj: Obj) -> None:
    """Raise 422 Invalid listing every bad field of `obj`."""
    meta = obj.get("metadata") or {}
    causes = name_causes(rt.kind, meta.get("name")) + _label_causes(meta)
    if rt.group == "" and rt.kind == "Pod":
        causes += _pod_causes(obj.get("spec"))
    if rt.group == "" and rt.kind == "Event":
        causes += _event_causes(obj)
    if causes:
        raise invalid(rt.kind, str(meta.get("name") or ""), causes, rt.group)
