"""A container's environment and its `$(VAR)` expansion, as the kubelet builds them.

Pure: secrets and configmaps come through a lookup function, so nothing here
reads the store or starts a process. A missing secret, configmap or key
raises ContainerConfigError with the message a real kubelet reports
(CreateContainerConfigError).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any

from kubesim.kubelet.quantities import cpu_millicores, memory_bytes

Obj = dict[str, Any]
# (resource, namespace, name) -> the stored object or None.
Lookup = Callable[[str, str, str], Obj | None]

_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ContainerConfigError(Exception):
    """The container cannot be configured (missing secret, configmap or key)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known names are replaced, unknown ones kept,
    `$$` is a literal `$` (so `$$(VAR)` stays `$(VAR)`)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close == -1:
                out.append(text[i:])
                break
            name = text[i + 2 : close]
            out.append(env[name] if name in env else text[i : close + 1])
            i = close + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def container_env(
    pod: Obj,
    container: Obj,
    pod_ip: str,
    lookup: Lookup,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The process environment: `base`, then envFrom, then env in order.

    Literal values may refer to variables defined before them, as in Kubernetes.
    """
    namespace = pod["metadata"].get("namespace", "default")
    env: dict[str, str] = dict(base or {})
    for source in container.get("envFrom") or []:
        env.update(_env_from(source, namespace, lookup))
    for var in container.get("env") or []:
        name = var["name"]
        if var.get("valueFrom"):
            value = _value_from(var["valueFrom"], pod, pod_ip, namespace, lookup)
            if value is None:
                continue
            env[name] = value
        else:
            env[name] = expand(str(var.get("value") or ""), env)
    return env


def container_argv(container: Obj, env: Mapping[str, str]) -> list[str]:
    """command + args with `$(VAR)` expanded from the container's env."""
    parts = list(container.get("command") or []) + list(container.get("args") or [])
    return [expand(str(part), env) for part in parts]


def _env_from(source: Obj, namespace: str, lookup: Lookup) -> dict[str, str]:
    prefix = source.get("prefix") or ""
    if "configMapRef" in source:
        ref, resource, kind = source["configMapRef"], "configmaps", "configmap"
    elif "secretRef" in source:
        ref, resource, kind = source["secretRef"], "secrets", "secret"
    else:
        return {}
    obj = lookup(resource, namespace, ref.get("name", ""))
    if obj is None:
        if ref.get("optional"):
            return {}
        raise ContainerConfigError(f'{kind} "{ref.get("name", "")}" not found')
    data = decoded_data(obj, resource)
    return {prefix + key: value for key, value in data.items()}


def _value_from(source: Obj, pod: Obj, pod_ip: str, namespace: str, lookup: Lookup) -> str | None:
    if "fieldRef" in source:
        return _field(source["fieldRef"].get("fieldPath", ""), pod, pod_ip)
    if "secretKeyRef" in source:
        return _key(source["secretKeyRef"], "secrets", "Secret", namespace, lookup)
    if "configMapKeyRef" in source:
        return _key(source["configMapKeyRef"], "configmaps", "ConfigMap", namespace, lookup)
    if "resourceFieldRef" in source:
        return _resource_field(source["resourceFieldRef"], pod)
    return None


def _field(path: str, pod: Obj, pod_ip: str) -> str:
    metadata, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", "default"),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path])
    match = _LABEL_REF.match(path)
    if match:
        return str((metadata.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _key(ref: Obj, resource: str, kind: str, namespace: str, lookup: Lookup) -> str | None:
    name, key = ref.get("name", ""), ref.get("key", "")
    obj = lookup(resource, namespace, name)
    if obj is None:
        if ref.get("optional"):
            return None
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    data = decoded_data(obj, resource)
    if key not in data:
        if ref.get("optional"):
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key]


def decoded_data(obj: Obj, resource: str) -> dict[str, str]:
    """Secret data is base64 on the wire; stringData and configmap data are plain."""
    data: dict[str, str] = {}
    if resource == "secrets":
        for key, value in (obj.get("data") or {}).items():
            data[key] = base64.b64decode(value).decode("utf-8", "replace")
        data.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    else:
        data.update({k: str(v) for k, v in (obj.get("data") or {}).items()})
    return data


def _resource_field(ref: Obj, pod: Obj) -> str:
    wanted = ref.get("containerName")
    for container in (pod.get("spec") or {}).get("containers") or []:
        if wanted and container.get("name") != wanted:
            continue
        kind, _, what = str(ref.get("resource", "")).partition(".")
        value = ((container.get("resources") or {}).get(kind) or {}).get(what)
        if value is None:
            return "0"
        if what == "cpu":
            return str(max(1, -(-cpu_millicores(value) // 1000)))
        return str(memory_bytes(value))
    return "0"
