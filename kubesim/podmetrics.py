"""metrics.k8s.io PodMetrics built from the kubelet's measured usage.

The kubelet measures a whole pod (all its processes); the usage is reported
on the pod's first container and the others show zero, since kubesim cannot
split it. Pure: builds dicts, never measures anything itself.
"""

from __future__ import annotations

from typing import Any

from kubesim.contracts import PodUsage
from kubesim.store import now_rfc3339

Obj = dict[str, Any]

API_VERSION = "metrics.k8s.io/v1beta1"


def pod_metrics(pod: Obj, usage_source: PodUsage | None) -> Obj | None:
    """PodMetrics for a stored pod, or None when nothing has been measured."""
    meta = pod["metadata"]
    usage = usage_source.usage(meta.get("namespace", ""), meta["name"]) if usage_source else None
    if usage is None:
        return None
    containers = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    return {
        "kind": "PodMetrics",
        "apiVersion": API_VERSION,
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace", ""),
            "creationTimestamp": now_rfc3339(),
            "labels": meta.get("labels") or {},
        },
        "timestamp": now_rfc3339(),
        "window": "10s",
        "containers": [
            {"name": name, "usage": dict(usage) if i == 0 else {"cpu": "0", "memory": "0"}}
            for i, name in enumerate(containers)
        ],
    }
