"""A whole z2jh values file -> podgate's config: the sections in order, every key reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from control.z2jh.auth import translate_auth
from control.z2jh.keys import KEYS, unknown_keys
from control.z2jh.report import Report, Z2JHError
from control.z2jh.singleuser import translate_singleuser

# What podgate on a cluster always has (deploy/base/config.yaml).
CLUSTER_BASE: dict[str, Any] = {
    "listen": "0.0.0.0:8000",
    "ops_listen": "0.0.0.0:8081",
    "log_format": "json",
    "shutdown_grace_seconds": 25,
    "control": {"enabled": True},
    "cluster": {"kind": "kube"},
    "api_tokens_file": "/etc/podgate/secrets/api-tokens.yaml",
}
# Sections of z2jh whose job podgate or its chart does differently, and why.
_REPLACED = {
    "proxy": "podgate is the proxy: no configurable-http-proxy, no secretToken between hub and "
    "proxy; TLS comes from an Ingress (the chart's ingress.*)",
    "prePuller": "podgate pulls no images ahead",
    "ingress": "the chart's ingress.* (enabled, ingressClassName, annotations, hosts, tls) "
    "takes the same keys; copy them into the chart's values",
    "httpRoute": "the chart makes no Gateway API route; use its ingress.*",
    "rbac": "the chart always makes podgate's Role and ServiceAccount",
    "debug": "podgate.config: {log_level: debug}",
    "imagePullSecret": "podgate makes no pull Secret",
    "imagePullSecrets": "podgate makes no pull Secret",
}
_NOT_NEEDED = {"enabled", "fullnameOverride", "nameOverride", "global", "custom"}
_HUB_NO_COUNTERPART = {
    "db": "podgate keeps no database: users and servers live in Kubernetes objects",
    "services": "JupyterHub services (with their API tokens): podgate's api_tokens "
    "(the chart's apiTokens) give scripts a token; no managed processes",
    "loadRoles": "podgate's API tokens carry scopes of their own (apiTokens[].scopes)",
    "activeServerLimit": "podgate limits starts under way (concurrentSpawnLimit), not servers",
    "consecutiveFailureLimit": "podgate never stops itself after failed starts",
    "baseUrl": "podgate serves at /",
    "existingSecret": "the chart's secrets.existingSecret (keys cookie-secret, users.yaml, "
    "api-tokens.yaml: not the hub's)",
}
_HUB_POD = "the hub pod's own settings: podgate's pod is the chart's podgate.*"


@dataclass(frozen=True)
class Translation:
    config: dict[str, Any]  # podgate's config, ready for yaml.safe_dump
    report: Report
    cookie_secret: str | None  # hub.cookieSecret: belongs in a Secret, not the config


def parse(text: str, name: str) -> dict[str, Any]:
    """The values file's mapping, or Z2JHError saying why it is not one."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise Z2JHError([f"{name} is not valid YAML{where}"]) from e
    if data is None:
        raise Z2JHError([f"{name} is empty: not a Zero to JupyterHub values file"])
    if not isinstance(data, dict):
        raise Z2JHError([f"{name} holds {type(data).__name__}, not a mapping of z2jh's values"])
    bad = [str(k) for k in data if not isinstance(k, str)]
    if bad:
        raise Z2JHError([f"{name}: the key {bad[0]} is not text"])
    if not set(data) & (set(KEYS) - _NOT_NEEDED):
        raise Z2JHError(
            [
                f"{name} is not a Zero to JupyterHub values file: none of its keys "
                f"({', '.join(sorted(data))}) is one of z2jh's (hub, singleuser, cull, "
                "scheduling, proxy, ...)"
            ]
        )
    problems = unknown_keys(data)
    problems += _type_problems(data)
    if problems:
        raise Z2JHError(problems)
    return data


def _type_problems(data: dict[str, Any]) -> list[str]:
    """Sections read as mappings must be mappings (z2jh's schema says the same)."""
    problems = []
    for path in (
        "hub",
        "hub.config",
        "singleuser",
        "singleuser.cpu",
        "singleuser.memory",
        "singleuser.image",
        "singleuser.storage",
        "cull",
        "scheduling",
        "scheduling.userPods",
        "hub.extraConfig",
    ):
        value: Any = data
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None and not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {type(value).__name__}")
    profiles = (
        (data.get("singleuser") or {}).get("profileList")
        if isinstance(data.get("singleuser"), dict)
        else None
    )
    if profiles is not None:
        if not isinstance(profiles, list):
            problems.append("singleuser.profileList: expected a list of profiles")
        else:
            for i, p in enumerate(profiles):
                if not isinstance(p, dict) or "display_name" not in p:
                    problems.append(
                        f"singleuser.profileList[{i}]: expected a mapping with display_name"
                    )
    return problems


def translate(values: dict[str, Any], namespace: str = "podgate") -> Translation:
    """podgate's config for a parsed (parse()) z2jh values file, and the report."""
    report = Report()
    hub = dict(values.get("hub") or {})
    auth, edge = translate_auth(hub.pop("config", None) or {}, report)
    if auth["kind"] == "password" and "users_file" not in auth:
        auth["users_file"] = "/etc/podgate/secrets/users.yaml"
    spawner = translate_singleuser(
        values.get("singleuser") or {}, values.get("scheduling") or {}, namespace, report
    )
    limit = hub.pop("concurrentSpawnLimit", 64)
    spawner["concurrent_spawn_limit"] = limit
    report.carried(
        "hub.concurrentSpawnLimit",
        f"spawner.concurrent_spawn_limit: {limit}"
        + (" (z2jh's default)" if "concurrentSpawnLimit" not in (values.get("hub") or {}) else ""),
    )
    _named_servers(hub, spawner, report)
    cookie_secret = hub.pop("cookieSecret", None)
    if cookie_secret:
        report.changed(
            "hub.cookieSecret",
            "not written into the config: it goes into the "
            "Secret (the chart's secrets.cookieSecret, env PODGATE_COOKIE_SECRET); "
            "users sign in once more, podgate's cookies are its own",
        )
    for name, code in sorted((hub.pop("extraConfig", None) or {}).items()):
        lines = len(str(code).strip().splitlines())
        report.none(
            f"hub.extraConfig.{name}",
            f"Python ({lines} line{'s' * (lines != 1)}): "
            "not translated, podgate runs no hub Python; read it and set the podgate "
            "keys it means by hand",
        )
    for key in sorted(hub):
        report.none(f"hub.{key}", _HUB_NO_COUNTERPART.get(key, _HUB_POD))
    culler = _cull(values.get("cull") or {}, report)
    for key in sorted(set(values) - {"hub", "singleuser", "scheduling", "cull"} - _NOT_NEEDED):
        report.none(key, _REPLACED.get(key, "podgate has no such section"))
    config = {
        **CLUSTER_BASE,
        "auth": auth,
        "edge": {"trusted_proxies": [], **edge},
        "spawner": spawner,
        "culler": culler,
    }
    return Translation(config, report, str(cookie_secret) if cookie_secret else None)


def _cull(cull: dict[str, Any], report: Report) -> dict[str, Any]:
    """z2jh's culler (its defaults where unset) as podgate's built-in one."""
    cull = dict(cull)
    out: dict[str, Any] = {}
    for key, target, default in (
        ("enabled", "enabled", True),
        ("timeout", "timeout", 3600),
        ("every", "every", 600),
        ("concurrency", "concurrency", 10),
        ("adminUsers", "cull_admin_users", True),
    ):
        given = key in cull
        out[target] = cull.pop(key) if given else default
        if given:
            shown = str(out[target]).lower() if isinstance(out[target], bool) else out[target]
            report.carried(f"cull.{key}", f"culler.{target}: {shown}")
    report.carried("cull", "podgate's own culler (no hub service); z2jh's defaults where unset")
    max_age = cull.pop("maxAge", 0)
    if max_age:
        out["max_age"] = max_age
        report.carried("cull.maxAge", f"culler.max_age: {max_age}")
    if cull.pop("users", False):
        report.none("cull.users", "podgate stops idle servers but never deletes users")
    if cull.pop("removeNamedServers", False):
        report.none("cull.removeNamedServers", "one server per user: nothing to remove")
    for key in sorted(cull):
        report.none(f"cull.{key}", "podgate's culler has no such setting")
    return out


# podgate has no "no limit": JupyterHub's 0 (unlimited) becomes this many per user.
UNLIMITED_NAMED_SERVERS = 10


def _named_servers(hub: dict[str, Any], spawner: dict[str, Any], report: Report) -> None:
    """hub.allowNamedServers and namedServerLimitPerUser -> spawner.named_server_limit_per_user."""
    allowed = hub.pop("allowNamedServers", None)
    limit = hub.pop("namedServerLimitPerUser", None)
    if not allowed:
        if limit is not None:
            report.none(
                "hub.namedServerLimitPerUser",
                "named servers are off (allowNamedServers is not true): nothing to limit",
            )
        return
    if limit:
        spawner["named_server_limit_per_user"] = int(limit)
        report.carried(
            "hub.namedServerLimitPerUser", f"spawner.named_server_limit_per_user: {int(limit)}"
        )
        report.carried("hub.allowNamedServers", "named servers on (the limit above)")
        return
    spawner["named_server_limit_per_user"] = UNLIMITED_NAMED_SERVERS
    report.changed(
        "hub.allowNamedServers",
        f"spawner.named_server_limit_per_user: {UNLIMITED_NAMED_SERVERS}; JupyterHub's "
        "no limit has no counterpart in podgate, raise it as your users need",
    )
