"""podgate's config (from translate) -> the values of podgate's Helm chart.

The chart's z2jh-shaped keys take what they can express; the rest goes into
podgate.config, which the chart merges over the config it writes. tests/z2jh
renders these values with helm and checks the config equals translate's.
"""

from __future__ import annotations

import copy
import re
from typing import Any

# image:tag, with no digest and no registry port mistaken for a tag.
_IMAGE = re.compile(r"^(?P<name>[^@]+?):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")
_OVERRIDE = {  # podgate profile key -> kubespawner_override key
    "image": "image",
    "cmd": "cmd",
    "node_selector": "node_selector",
    "tolerations": "tolerations",
    "env": "environment",
    "extra_labels": "extra_labels",
    "run_as_user": "uid",
}
_RESOURCES = {
    "cpu_request": "cpu_guarantee",
    "cpu_limit": "cpu_limit",
    "memory_request": "mem_guarantee",
    "memory_limit": "mem_limit",
}


def chart_values(config: dict[str, Any], cookie_secret: str | None = None) -> dict[str, Any]:
    """The chart's values that render `config` (its namespace is the release's)."""
    rest = copy.deepcopy(config)
    spawner, culler, auth = rest.pop("spawner"), rest.pop("culler"), rest.pop("auth")
    spawner.pop("namespace")
    spawner.pop("port", None)
    values: dict[str, Any] = {
        "auth": _auth(auth),
        "hub": {"concurrentSpawnLimit": spawner.pop("concurrent_spawn_limit", 100)},
        "singleuser": _singleuser(spawner),
        "cull": _cull(culler),
        "scheduling": {"userPods": {"tolerations": spawner.pop("tolerations", [])}},
    }
    if cookie_secret:
        values["secrets"] = {"cookieSecret": cookie_secret}
    extra: dict[str, Any] = {}
    if spawner:
        extra["spawner"] = spawner
    edge = {k: v for k, v in rest.get("edge", {}).items() if k != "trusted_proxies"}
    if edge:
        extra["edge"] = edge
    if extra:
        values["podgate"] = {"config": extra}
    return values


def _auth(auth: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": auth["kind"], "admins": auth.get("admins", [])}
    if auth.get("allowed_users"):
        out["allowedUsers"] = auth["allowed_users"]
    if auth.get("password"):
        out["dummyPassword"] = auth["password"]
    if "oidc" in auth:
        out["oidc"] = auth["oidc"]
    return out


def _singleuser(spawner: dict[str, Any]) -> dict[str, Any]:
    """Pops from `spawner` what the chart's singleuser.* expresses."""
    su: dict[str, Any] = {}
    found = _IMAGE.match(spawner["image"])
    if found:
        spawner.pop("image")
        su["image"] = {"name": found["name"], "tag": found["tag"]}
        if "image_pull_policy" in spawner:
            su["image"]["pullPolicy"] = spawner.pop("image_pull_policy")
    su["cmd"] = spawner.pop("cmd", [])
    args = spawner.get("args", [])
    if len(args) == 1 and args[0].startswith("--ServerApp.default_url="):
        su["defaultUrl"] = spawner.pop("args")[0].partition("=")[2]
    resources = spawner.pop("resources", {})
    su["cpu"] = {"guarantee": resources.get("cpu_request"), "limit": resources.get("cpu_limit")}
    su["memory"] = {
        "guarantee": resources.get("memory_request"),
        "limit": resources.get("memory_limit"),
    }
    for key, target in (
        ("start_timeout", "startTimeout"),
        ("run_as_user", "uid"),
        ("fs_group", "fsGid"),
        ("env", "extraEnv"),
        ("node_selector", "nodeSelector"),
        ("extra_labels", "extraLabels"),
    ):
        if key in spawner:
            su[target] = spawner.pop(key)
    storage = spawner.pop("storage", None)
    if storage is None:
        su["storage"] = {"type": "none"}
    else:
        su["storage"] = {
            "type": "dynamic",
            "capacity": storage["size"],
            "homeMountPath": storage["mount_path"],
            "dynamic": {"storageClass": storage["storage_class"]},
        }
        if "access_modes" in storage:
            spawner["storage"] = {"access_modes": storage["access_modes"]}
    profiles = spawner.get("profiles", [])
    if profiles and all(_expressible(p) for p in profiles):
        su["profileList"] = [_profile(p) for p in spawner.pop("profiles")]
    return su


def _expressible(profile: dict[str, Any]) -> bool:
    known = {"slug", "display_name", "description", "default", "resources", *_OVERRIDE}
    return set(profile) <= known


def _profile(profile: dict[str, Any]) -> dict[str, Any]:
    out = {
        k: profile[k] for k in ("display_name", "slug", "description", "default") if k in profile
    }
    override = {_OVERRIDE[k]: v for k, v in profile.items() if k in _OVERRIDE}
    for key, target in _RESOURCES.items():
        if key in profile.get("resources", {}):
            override[target] = profile["resources"][key]
    if override:
        out["kubespawner_override"] = override
    return out


def _cull(culler: dict[str, Any]) -> dict[str, Any]:
    out = {
        "enabled": culler["enabled"],
        "timeout": culler["timeout"],
        "every": culler["every"],
        "concurrency": culler["concurrency"],
        "adminUsers": culler["cull_admin_users"],
        "maxAge": culler.get("max_age", 0),
    }
    return out
