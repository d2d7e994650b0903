"""singleuser, its profileList and scheduling.userPods -> podgate's spawner settings."""

from __future__ import annotations

import re
from typing import Any

from control.z2jh.report import Report

DEFAULT_IMAGE = "quay.io/jupyter/base-notebook:latest"  # podgate's own default
SINGLEUSER_CMD = "jupyterhub-singleuser"
# z2jh gives every user pod these tolerations (its dedicated user node pools).
Z2JH_TOLERATIONS = [
    {
        "key": "hub.jupyter.org/dedicated",
        "operator": "Equal",
        "value": "user",
        "effect": "NoSchedule",
    },
    {
        "key": "hub.jupyter.org_dedicated",
        "operator": "Equal",
        "value": "user",
        "effect": "NoSchedule",
    },
]
NODE_PURPOSE = "hub.jupyter.org/node-purpose"

# singleuser keys with no counterpart, and why.
_NO_COUNTERPART = {
    "podNameTemplate": "podgate names pods jupyter-<escaped name> itself",
    "imagePullSecret": "podgate makes no pull Secret; give the namespace's default "
    "ServiceAccount imagePullSecrets",
    "extraPodAffinity": "podgate sets no pod affinity",
    "extraPodAntiAffinity": "podgate sets no pod anti-affinity",
    "networkTools": "podgate's chart blocks the metadata service with a NetworkPolicy instead",
    "cloudMetadata": "podgate's chart blocks 169.254.169.254 in podgate-user-pods-egress",
    "networkPolicy": "podgate's chart has its own user pod NetworkPolicies (networkPolicy.*)",
    "events": "podgate always shows the pod's events while it starts",
    "extraFiles": "podgate mounts no extra files into user pods",
    "lifecycleHooks": "podgate sets no lifecycle hooks on user pods",
    "initContainers": "podgate runs no init containers in user pods",
    "extraContainers": "podgate runs one container per user pod",
    "allowPrivilegeEscalation": "always false: the namespace enforces Pod Security 'restricted'",
    "extraPodConfig": "podgate takes no raw pod spec",
    "extraResource": "podgate sets CPU and memory only",
}
_OVERRIDE_NO_COUNTERPART = "a KubeSpawner setting podgate's profiles do not have"


def quantity(value: Any) -> str:
    """A z2jh CPU or memory value (0.5, 2, "1G") as podgate's Kubernetes quantity string."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def translate_singleuser(
    su: dict[str, Any], scheduling: dict[str, Any], namespace: str, report: Report
) -> dict[str, Any]:
    """podgate's spawner settings from singleuser and scheduling.userPods (z2jh defaults kept)."""
    su = dict(su)
    spawner: dict[str, Any] = {"namespace": namespace, "port": 8888}
    report.changed(
        "(namespace)",
        f"spawner.namespace: {namespace}; user pods go into podgate's "
        "own namespace (the chart sets it to the release's)",
    )
    _image(su.pop("image", None), spawner, report)
    _cmd(su, spawner, namespace, report)
    if su.get("defaultUrl"):
        url = su.pop("defaultUrl")
        spawner["args"] = [f"--ServerApp.default_url={url}"]
        report.carried("singleuser.defaultUrl", f"spawner.args: [--ServerApp.default_url={url}]")
    su.pop("defaultUrl", None)
    _resources(su.pop("cpu", None) or {}, su.pop("memory", None), spawner, report)
    _storage(su.pop("storage", None), spawner, report)
    for key, target in (
        ("startTimeout", "start_timeout"),
        ("serviceAccountName", "service_account"),
        ("fsGid", "fs_group"),
    ):
        if su.get(key) is not None:
            spawner[target] = su.pop(key)
            report.carried(f"singleuser.{key}", f"spawner.{target}: {spawner[target]}")
        su.pop(key, None)
    spawner["unschedulable"] = "wait"
    report.changed(
        "(scheduling)",
        "spawner.unschedulable: wait; KubeSpawner waits for a node to have room "
        "(a cluster autoscaler may add one) until the start timeout, so podgate does too",
    )
    if su.get("uid") is not None:
        uid = su.pop("uid")
        if uid == 0:
            report.changed(
                "singleuser.uid",
                "0 (root) -> spawner.run_as_user: 1000; the "
                "namespace enforces Pod Security 'restricted', which refuses root",
            )
        else:
            spawner["run_as_user"] = uid
            report.carried("singleuser.uid", f"spawner.run_as_user: {uid}")
    su.pop("uid", None)
    env = _env(su.pop("extraEnv", None) or {}, "singleuser.extraEnv", report)
    if env:
        spawner["env"] = env
    for key, target in (("extraLabels", "extra_labels"), ("extraAnnotations", "extra_annotations")):
        given = su.pop(key, None) or {}
        if given:
            spawner[target] = {str(k): str(v) for k, v in given.items()}
            report.carried(f"singleuser.{key}", f"spawner.{target}")
    node_selector = {str(k): str(v) for k, v in (su.pop("nodeSelector", None) or {}).items()}
    if node_selector:
        report.carried("singleuser.nodeSelector", "spawner.node_selector")
    _affinity(su.pop("extraNodeAffinity", None) or {}, node_selector, report)
    tolerations = _scheduling(scheduling, node_selector, report)
    extra = su.pop("extraTolerations", None) or []
    if extra:
        tolerations += extra
        report.carried("singleuser.extraTolerations", "spawner.tolerations")
    spawner["tolerations"] = tolerations
    if node_selector:
        spawner["node_selector"] = node_selector
    profiles = su.pop("profileList", None) or []
    if profiles:
        spawner["profiles"] = [_profile(p, i, report) for i, p in enumerate(profiles)]
    for key in sorted(su):
        if su[key] in (None, {}, []):
            continue
        report.none(f"singleuser.{key}", _NO_COUNTERPART.get(key, "podgate has no such setting"))
    return spawner


def _image(image: dict[str, Any] | None, spawner: dict[str, Any], report: Report) -> None:
    if not image or not image.get("name"):
        spawner["image"] = DEFAULT_IMAGE
        report.changed("singleuser.image", f"unset: z2jh's sample image -> {DEFAULT_IMAGE}")
        return
    tag = image.get("tag")
    spawner["image"] = f"{image['name']}:{quantity(tag)}" if tag is not None else image["name"]
    report.carried("singleuser.image", f"spawner.image: {spawner['image']}")
    if image.get("pullPolicy"):
        spawner["image_pull_policy"] = image["pullPolicy"]
        report.carried(
            "singleuser.image.pullPolicy", f"spawner.image_pull_policy: {image['pullPolicy']}"
        )
    if image.get("pullSecrets"):
        report.none("singleuser.image.pullSecrets", _NO_COUNTERPART["imagePullSecret"])


def _cmd(su: dict[str, Any], spawner: dict[str, Any], namespace: str, report: Report) -> None:
    """z2jh starts jupyterhub-singleuser unless told otherwise: podgate's hub_api serves it."""
    if "cmd" in su:
        cmd = su.pop("cmd")
        how = "spawner.cmd"
    else:
        cmd, how = SINGLEUSER_CMD, "unset: z2jh's default -> spawner.cmd"
    if cmd is None or cmd == []:
        report.carried("singleuser.cmd", "null: the image's own command (spawner.cmd: [])")
        return
    spawner["cmd"] = [cmd] if isinstance(cmd, str) else [str(c) for c in cmd]
    if spawner["cmd"][0] == SINGLEUSER_CMD:
        spawner["hub_api"] = True
        spawner["hub_url"] = f"http://podgate.{namespace}.svc"
        report.changed(
            "singleuser.cmd",
            f"{how}: {spawner['cmd']} with spawner.hub_api: true and "
            f"hub_url: {spawner['hub_url']} (podgate's public Service): "
            "jupyterhub-singleuser talks to podgate's hub API",
        )
    else:
        report.carried("singleuser.cmd", f"{how}: {spawner['cmd']}")


def _resources(
    cpu: dict[str, Any], memory: dict[str, Any] | None, spawner: dict[str, Any], report: Report
) -> None:
    resources: dict[str, str] = {}
    if memory is None:
        resources["memory_request"] = "1G"
        report.changed(
            "singleuser.memory.guarantee",
            "unset: z2jh's default 1G -> spawner.resources.memory_request: 1G",
        )
        memory = {}
    for section, values, prefix in (("cpu", cpu, "cpu"), ("memory", memory, "memory")):
        for key, suffix in (("guarantee", "request"), ("limit", "limit")):
            if values.get(key) is not None:
                resources[f"{prefix}_{suffix}"] = quantity(values[key])
                report.carried(
                    f"singleuser.{section}.{key}",
                    f"spawner.resources.{prefix}_{suffix}: {quantity(values[key])}",
                )
    spawner["resources"] = resources


def _storage(storage: dict[str, Any] | None, spawner: dict[str, Any], report: Report) -> None:
    storage = dict(storage or {})
    kind = storage.pop("type", "dynamic")
    if kind == "none":
        report.carried("singleuser.storage.type", "none: no claim (spawner.storage unset)")
        return
    if kind == "static":
        report.none(
            "singleuser.storage.type",
            "static (one shared claim, a subPath per user): "
            "podgate makes one claim per user; no storage written",
        )
        return
    dynamic = dict(storage.pop("dynamic", None) or {})
    out: dict[str, Any] = {
        "size": str(storage.pop("capacity", "10Gi")),
        "storage_class": dynamic.pop("storageClass", None),
        "mount_path": storage.pop("homeMountPath", "/home/jovyan"),
    }
    modes = dynamic.pop("storageAccessModes", None)
    if modes:
        out["access_modes"] = list(modes)
    spawner["storage"] = out
    report.carried(
        "singleuser.storage",
        f"dynamic -> spawner.storage: {out['size']} at "
        f"{out['mount_path']}, class {out['storage_class'] or '(the default)'}",
    )
    template = dynamic.pop("pvcNameTemplate", None)
    report.changed(
        "singleuser.storage.dynamic.pvcNameTemplate",
        f"{template or 'claim-{username}{servername} (the default)'}: podgate names "
        "claims claim-<name> with KubeSpawner's old escaping (safe: a-z 0-9, others "
        "-xx); a claim named otherwise is not reattached: check kubectl get pvc",
    )
    for key in sorted({**storage, **{f"dynamic.{k}": v for k, v in dynamic.items()}}):
        report.none(f"singleuser.storage.{key}", "podgate's claims have no such setting")


def _env(extra: Any, at: str, report: Report) -> dict[str, str]:
    """z2jh's extraEnv (a map, or a list of EnvVars): plain values only."""
    items = (
        extra.items()
        if isinstance(extra, dict)
        else ((e.get("name"), e.get("value", e)) for e in extra if isinstance(e, dict))
    )
    env: dict[str, str] = {}
    for name, value in items:
        if isinstance(value, dict):
            report.none(
                f"{at}.{name}",
                "valueFrom (a Secret or the downward API): podgate sets plain values only",
            )
        else:
            env[str(name)] = "" if value is None else str(value)
    if env:
        report.carried(at, f"env: {', '.join(sorted(env))}")
    return env


def _affinity(affinity: dict[str, Any], node_selector: dict[str, str], report: Report) -> None:
    """Required node affinity of one term with In/one value is a node selector; nothing else is."""
    for kind in ("required", "preferred"):
        terms = affinity.get(kind) or []
        key = f"singleuser.extraNodeAffinity.{kind}"
        if not terms:
            continue
        simple = kind == "required" and len(terms) == 1 and _as_selector(terms[0]) is not None
        if simple:
            node_selector.update(_as_selector(terms[0]) or {})
            report.changed(key, "one term of In with one value each: spawner.node_selector")
        else:
            report.none(
                key,
                "podgate sets node selectors only: no preferences, no OR of terms, "
                "no operators but equality",
            )


def _as_selector(term: Any) -> dict[str, str] | None:
    if not isinstance(term, dict) or set(term) != {"matchExpressions"}:
        return None
    out = {}
    for expr in term["matchExpressions"] or []:
        if expr.get("operator") != "In" or len(expr.get("values") or []) != 1:
            return None
        out[str(expr["key"])] = str(expr["values"][0])
    return out or None


def _scheduling(
    scheduling: dict[str, Any], node_selector: dict[str, str], report: Report
) -> list[dict[str, Any]]:
    """z2jh's user pod tolerations and node purpose; the rest of scheduling has no counterpart."""
    scheduling = dict(scheduling or {})
    user_pods = dict(scheduling.pop("userPods", None) or {})
    tolerations = [dict(t) for t in Z2JH_TOLERATIONS]
    report.changed(
        "scheduling.userPods",
        "z2jh's own tolerations of every user pod "
        "(hub.jupyter.org/dedicated=user:NoSchedule) written to spawner.tolerations",
    )
    given = user_pods.pop("tolerations", None) or []
    if given:
        tolerations += given
        report.carried("scheduling.userPods.tolerations", "spawner.tolerations")
    purpose = (user_pods.pop("nodeAffinity", None) or {}).get("matchNodePurpose", "prefer")
    key = "scheduling.userPods.nodeAffinity.matchNodePurpose"
    if purpose == "require":
        node_selector[NODE_PURPOSE] = "user"
        report.carried(key, f"require -> spawner.node_selector: {NODE_PURPOSE}=user")
    elif purpose == "prefer":
        report.none(
            key,
            "prefer (z2jh's default): podgate sets no preferred affinity; user pods "
            "go to any node (use require, or singleuser.nodeSelector)",
        )
    for key in sorted(scheduling):
        report.none(
            f"scheduling.{key}",
            "podgate uses the cluster's scheduler and no placeholder or priority pods",
        )
    return tolerations


_SLUG = re.compile(r"[^a-z0-9]+")


def _profile(entry: dict[str, Any], index: int, report: Report) -> dict[str, Any]:
    """One profileList entry; a missing slug is made from display_name, as KubeSpawner does."""
    at = f"singleuser.profileList[{index}]"
    entry = dict(entry)
    name = str(entry.pop("display_name", f"Profile {index + 1}"))
    slug = entry.pop("slug", None) or _SLUG.sub("-", name.lower()).strip("-")[:63] or f"p{index}"
    profile: dict[str, Any] = {"slug": str(slug), "display_name": name}
    for key in ("description", "default"):
        if key in entry:
            profile[key] = entry.pop(key)
    override = dict(entry.pop("kubespawner_override", None) or {})
    _override(override, profile, f"{at}.kubespawner_override", report)
    report.carried(at, f"profile {profile['slug']} ({name})")
    if entry.pop("profile_options", None):
        report.none(
            f"{at}.profile_options",
            "choices inside a profile: make each choice a profile of its own",
        )
    for key in sorted(entry):
        report.none(f"{at}.{key}", "a profile setting podgate does not have")
    return profile


def _override(o: dict[str, Any], profile: dict[str, Any], at: str, report: Report) -> None:
    if "image" in o:
        profile["image"] = str(o.pop("image"))
    if "image_pull_policy" in o:
        o.pop("image_pull_policy")
        report.none(f"{at}.image_pull_policy", "per profile: podgate has the spawner's only")
    if "cmd" in o:
        cmd = o.pop("cmd")
        profile["cmd"] = [cmd] if isinstance(cmd, str) else list(cmd or [])
    resources = {}
    for key, target in (
        ("cpu_guarantee", "cpu_request"),
        ("cpu_limit", "cpu_limit"),
        ("mem_guarantee", "memory_request"),
        ("mem_limit", "memory_limit"),
    ):
        if o.get(key) is not None:
            resources[target] = quantity(o.pop(key))
    if resources:
        profile["resources"] = resources
    for key, target in (("node_selector", "node_selector"), ("extra_labels", "extra_labels")):
        if key in o:
            profile[target] = {str(k): str(v) for k, v in (o.pop(key) or {}).items()}
    if "tolerations" in o:
        profile["tolerations"] = list(o.pop("tolerations") or [])
    if "environment" in o:
        env = _env(o.pop("environment") or {}, f"{at}.environment", report)
        profile["env"] = env
    if "uid" in o:
        uid = o.pop("uid")
        if uid:
            profile["run_as_user"] = uid
        else:
            report.changed(f"{at}.uid", "0 (root): dropped; Pod Security 'restricted' refuses root")
    for key in sorted(o):
        report.none(f"{at}.{key}", _OVERRIDE_NO_COUNTERPART)
