"""The keys of Zero to JupyterHub's values (its schema.yaml, chart versions 1.0 to 4.x).

A nested mapping: a key's value is the mapping of its own keys, or FREE where
z2jh itself takes any content (maps of names, Kubernetes objects, traitlets
config). `unknown_keys` names every key of a values file that z2jh does not
know, so a typo is an error here as it is in `helm install`.
"""

from __future__ import annotations

from typing import Any

FREE: dict[str, Any] = {}  # identity matters: anything goes below this key

_IMAGE = {"name": FREE, "tag": FREE, "pullPolicy": FREE, "pullSecrets": FREE}
_LIMITS = {"limit": FREE, "guarantee": FREE}


def _free(names: str) -> dict[str, Any]:
    """{name: FREE} for each of the space-separated names."""
    return dict.fromkeys(names.split(), FREE)


KEYS: dict[str, Any] = {
    "enabled": FREE,
    "fullnameOverride": FREE,
    "nameOverride": FREE,
    "custom": FREE,
    "imagePullSecret": FREE,
    "imagePullSecrets": FREE,
    "global": FREE,
    "rbac": FREE,
    "debug": FREE,
    "prePuller": FREE,
    "ingress": FREE,
    "httpRoute": FREE,
    "proxy": FREE,
    "hub": _free(
        """
        revisionHistoryLimit config extraFiles baseUrl command args
        cookieSecret networkPolicy db labels initContainers nodeSelector
        tolerations concurrentSpawnLimit consecutiveFailureLimit
        activeServerLimit annotations authenticatePrometheus
        deploymentStrategy extraConfig extraContainers extraVolumeMounts
        extraVolumes livenessProbe readinessProbe namedServerLimitPerUser
        redirectToServer resources lifecycle loadRoles services pdb
        podSecurityContext containerSecurityContext service allowNamedServers
        shutdownOnLogout templatePaths templateVars serviceAccount
        extraPodSpec existingSecret extraEnv image imagePullPolicy
        imagePullSecret publicURL fsGid uid
        """
    ),
    "singleuser": {
        **_free(
            """
        podNameTemplate imagePullSecret startTimeout cmd defaultUrl extraEnv
        nodeSelector extraTolerations extraNodeAffinity extraPodAffinity
        extraPodAntiAffinity networkTools cloudMetadata networkPolicy events
        extraAnnotations extraLabels extraFiles lifecycleHooks initContainers
        extraContainers allowPrivilegeEscalation uid fsGid serviceAccountName
        extraPodConfig extraResource profileList
        """
        ),
        "image": _IMAGE,
        "cpu": _LIMITS,
        "memory": _LIMITS,
        "storage": {
            "type": FREE,
            "extraLabels": FREE,
            "extraVolumes": FREE,
            "extraVolumeMounts": FREE,
            "static": {"pvcName": FREE, "subPath": FREE},
            "capacity": FREE,
            "homeMountPath": FREE,
            "dynamic": {
                "storageClass": FREE,
                "pvcNameTemplate": FREE,
                "volumeNameTemplate": FREE,
                "storageAccessModes": FREE,
                "subPath": FREE,
            },
        },
    },
    "scheduling": {
        "userScheduler": FREE,
        "podPriority": FREE,
        "userPlaceholder": FREE,
        "corePods": FREE,
        "userPods": {"tolerations": FREE, "nodeAffinity": {"matchNodePurpose": FREE}},
    },
    "cull": _free(
        """
        enabled users adminUsers removeNamedServers timeout every concurrency
        maxAge
        """
    ),
}

# Keys of z2jh before 1.0, moved since: said so instead of "unknown".
MOVED = {
    "auth": "the 0.x auth block moved to hub.config in z2jh 1.0; convert the file to 1.0 first",
}


def unknown_keys(values: dict[str, Any], known: dict[str, Any] = KEYS, at: str = "") -> list[str]:
    """'KEY: why' for every key of `values` z2jh does not know, depth first."""
    problems = []
    for key, value in values.items():
        path = f"{at}.{key}" if at else str(key)
        if key not in known:
            why = MOVED.get(path) or f"not a key of z2jh's values{_allowed(known)}"
            problems.append(f"{path}: {why}")
            continue
        below = known[key]
        if below is not FREE and isinstance(value, dict):
            problems += unknown_keys(value, below, path)
    return problems


def _allowed(known: dict[str, Any]) -> str:
    names = sorted(known)
    return f" (allowed here: {', '.join(names)})" if len(names) <= 12 else ""
