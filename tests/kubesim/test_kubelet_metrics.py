"""metrics.k8s.io PodMetrics over HTTP, measured from the pods' real processes.

What the admin panel shows: a busy pod's CPU in millicores and its memory
in Ki, an idle pod near zero, 404 for a pod that does not exist.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiException

PY = sys.executable

# Holds ~64 MiB and spins one core.
BUSY = (
    "import os\n"
    "block = bytearray(64 * 2**20)\n"
    "block[::4096] = b'x' * len(block[::4096])\n"
    "print('pid', os.getpid(), flush=True)\n"
    "while True:\n"
    "    pass\n"
)
IDLE = "import os,time; print('pid', os.getpid(), flush=True); time.sleep(60)"


def millicores(text: str) -> int:
    return int(text.removesuffix("m")) if text.endswith("m") else int(float(text) * 1000)


def kibibytes(text: str) -> int:
    assert text.endswith("Ki"), text
    return int(text.removesuffix("Ki"))


async def test_pod_metrics_reflect_a_busy_process(sim: Any) -> None:
    for name, script in (("busy", BUSY), ("idle", IDLE)):
        await sim.create(name, {"name": "main", "image": "x", "command": [PY, "-c", script]})
        await sim.pids(name)  # the interpreter is up and has done its allocation
    await sim.metrics("busy")  # CPU is averaged between two readings
    await sim.metrics("idle")
    await asyncio.sleep(0.6)
    busy = await sim.metrics("busy")
    idle = await sim.metrics("idle")
    assert busy["kind"] == "PodMetrics" and busy["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert busy["metadata"]["name"] == "busy" and busy["timestamp"] and busy["window"]
    (container,) = busy["containers"]
    assert container["name"] == "main"
    assert millicores(container["usage"]["cpu"]) >= 150  # spinning, on a shared 2-core box
    assert kibibytes(container["usage"]["memory"]) >= 64 * 1024
    idle_usage = idle["containers"][0]["usage"]
    assert millicores(idle_usage["cpu"]) < 50
    assert 1000 < kibibytes(idle_usage["memory"]) < 64 * 1024

    listed = await sim.custom.list_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", "default", "pods"
    )
    assert {item["metadata"]["name"] for item in listed["items"]} == {"busy", "idle"}


async def test_metrics_of_a_missing_pod_are_404(sim: Any) -> None:
    with pytest.raises(ApiException) as missing:
        await sim.metrics("nobody")
    assert missing.value.status == 404
