"""Discovery documents: /version, /api, /api/v1, /apis and each group's resource list.

These are what kubectl and clients read before any other call (kubectl needs
the verbs and short names in /api/v1). Built from kubesim.resources; pure
functions returning JSON-ready dicts, no I/O.
"""

from __future__ import annotations

from typing import Any

from kubesim.resources import CORE, CORE_SUBRESOURCES, GROUPS, ResourceType

Obj = dict[str, Any]

SERVER_VERSION: Obj = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0-kubesim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-04-17T00:00:00Z",
    "goVersion": "go1.22.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _resource_entry(rt: ResourceType) -> Obj:
    entry: Obj = {
        "name": rt.resource,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": sorted(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    return entry


def core_resources() -> Obj:
    resources = [_resource_entry(rt) for rt in CORE.values()]
    for name, verbs in CORE_SUBRESOURCES.items():
        parent = CORE[name.split("/")[0]]
        resources.append({"name": name, "singularName": "", "namespaced": parent.namespaced,
                          "kind": "Pod" if name == "pods/log" else parent.kind,
                          "verbs": list(verbs)})  # fmt: skip
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": resources}


def _group_entry(name: str, version: str) -> Obj:
    gv = {"groupVersion": f"{name}/{version}", "version": version}
    return {"name": name, "versions": [gv], "preferredVersion": gv}


def api_groups() -> Obj:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(name, version) for name, (version, _) in GROUPS.items()],
    }


def api_group(group: str) -> Obj | None:
    if group not in GROUPS:
        return None
    version = GROUPS[group][0]
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, version)}


def group_resources(group: str, version: str) -> Obj | None:
    known = GROUPS.get(group)
    if known is None or known[0] != version:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}",
        "resources": [_resource_entry(rt) for rt in known[1]],
    }
