"""The simulated kubelet driven through its store seam: what a spawner would see.

These tests start a real object store and a real SimKubelet, create pods the
way the API server does, and read back status and Events. Containers are
real local processes on their own 127.x.y.z address.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubesim.kubelet import KubeletConfig, NodeCapacity, SimKubelet
from kubesim.store import Store

Obj = dict[str, Any]
PY = sys.executable

# Serves HTTP on the pod's own address, given as $(POD_IP) in args.
HTTP_SERVER = (
    "import http.server,sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'hi')\n"
    "    def log_message(self, *a): pass\n"
    "http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()\n"
)


class Cluster:
    """A store with a started kubelet, plus helpers that wait on store changes."""

    def __init__(self, store: Store, kubelet: SimKubelet) -> None:
        self.store = store
        self.kubelet = kubelet
        self.changed = asyncio.Event()
        store.subscribe("pods", lambda *_: self.changed.set())
        store.subscribe("events", lambda *_: self.changed.set())

    def create(self, name: str, *containers: Obj, namespace: str = "default", **spec: Any) -> Obj:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": list(containers), **spec},
        }
        return self.store.create("pods", namespace, pod)

    def pod(self, name: str, namespace: str = "default") -> Obj | None:
        return self.store.get("pods", namespace, name)

    async def until(self, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait (bounded) until check() returns something truthy; return it."""
        deadline = time.monotonic() + timeout
        while True:
            self.changed.clear()
            result = check()
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting; last pod states: {self.summary()}")
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.2))
            except TimeoutError:
                pass

    async def until_pod(self, name: str, check: Callable[[Obj], Any], timeout: float = 10.0) -> Obj:
        def ok() -> Obj | None:
            pod = self.pod(name)
            return pod if pod is not None and check(pod) else None

        return await self.until(ok, timeout)

    def events(self, name: str) -> list[Obj]:
        found = [e for e in self.store.list("events") if e["involvedObject"]["name"] == name]
        return sorted(found, key=lambda e: e["metadata"]["resourceVersion"].zfill(12))

    def reasons(self, name: str) -> list[str]:
        return [e["reason"] for e in self.events(name)]

    def summary(self) -> list[tuple[str, Any]]:
        return [(p["metadata"]["name"], p.get("status")) for p in self.store.list("pods")]


def fast_config(tmp_path: Path, **changes: Any) -> KubeletConfig:
    options: dict[str, Any] = {
        "data_dir": tmp_path / "kubesim",
        "backoff_initial": 0.2,
        "backoff_max": 0.8,
        "stop_grace": 1.0,
        "memory_check_interval": 0.1,
    }
    options.update(changes)
    return KubeletConfig(**options)


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[SimKubelet] = []

    async def start(**changes: Any) -> Cluster:
        store = Store()
        store.create("namespaces", "", {"metadata": {"name": "default"}})
        kubelet = SimKubelet(fast_config(tmp_path, **changes))
        await kubelet.start(store)
        started.append(kubelet)
        return Cluster(store, kubelet)

    yield start
    for kubelet in started:
        await kubelet.stop()


@pytest.fixture
async def cluster(make_node: Callable[..., Any]) -> Cluster:
    return await make_node()


def phase(pod: Obj) -> str | None:
    return (pod.get("status") or {}).get("phase")


def condition(pod: Obj, kind: str) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return cond
    return None


def is_ready(pod: Obj) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond["status"] == "True"


def state(pod: Obj, index: int = 0) -> Obj:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[index]["state"] if len(statuses) > index else {}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is not alive
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def sleeper(**extra: Any) -> Obj:
    return {
        "name": "main",
        "image": "python:3.11",
        "command": [PY, "-c", "import time; time.sleep(60)"],
        **extra,
    }


async def test_pod_runs_on_its_own_address_and_becomes_ready(cluster: Cluster) -> None:
    cluster.create(
        "web",
        {
            "name": "notebook",
            "image": "jupyter/base",
            "command": [PY, "-c", HTTP_SERVER],
            "args": ["$(POD_IP)", "8888"],
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "ports": [{"containerPort": 8888, "name": "http"}],
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        },
    )
    pod = await cluster.until_pod("web", is_ready)
    status = pod["status"]
    ip = status["podIP"]
    assert ip.startswith("127.") and ip not in ("127.0.0.1", "127.0.1.1")
    assert status["podIPs"] == [{"ip": ip}]
    assert status["phase"] == "Running"
    assert pod["spec"]["nodeName"] == "kubesim-node"
    (container,) = status["containerStatuses"]
    for key in ("name", "image", "imageID", "ready", "restartCount"):
        assert key in container
    assert container["ready"] is True and container["started"] is True
    assert "running" in container["state"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    async with aiohttp.ClientSession() as session, session.get(f"http://{ip}:8888/") as response:
        assert response.status == 200
        assert await response.text() == "hi"
    assert cluster.reasons("web")[:5] == ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
    scheduled = cluster.events("web")[0]
    assert scheduled["source"]["component"] == "default-scheduler"
    assert scheduled["eventTime"] and scheduled["firstTimestamp"] is None
    started = [e for e in cluster.events("web") if e["reason"] == "Started"][0]
    assert started["eventTime"] is None and started["firstTimestamp"] and started["lastTimestamp"]
    assert started["involvedObject"]["uid"] == pod["metadata"]["uid"]
    assert started["involvedObject"]["fieldPath"] == "spec.containers{notebook}"
    assert started["source"]["component"] == "kubelet" and started["type"] == "Normal"


async def test_two_pods_get_different_addresses_reused_after_deletion(cluster: Cluster) -> None:
    cluster.create("a", sleeper(), terminationGracePeriodSeconds=1)
    cluster.create("b", sleeper(), terminationGracePeriodSeconds=1)
    a = await cluster.until_pod("a", is_ready)
    b = await cluster.until_pod("b", is_ready)
    assert a["status"]["podIP"] != b["status"]["podIP"]
    mark_deleted(cluster, "a", grace=0)
    await cluster.until(lambda: cluster.pod("a") is None)
    cluster.create("c", sleeper())
    c = await cluster.until_pod("c", is_ready)
    assert c["status"]["podIP"] == a["status"]["podIP"]


def mark_deleted(cluster: Cluster, name: str, grace: int) -> None:
    """What the API server does on DELETE: set deletionTimestamp and the grace period."""
    pod = cluster.pod(name)
    assert pod is not None
    pod["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    pod["metadata"]["deletionGracePeriodSeconds"] = grace
    entry = cluster.store.entry("pods", "default", name)
    assert entry is not None
    cluster.store.commit("pods", pod, "MODIFIED", entry)


async def test_deletion_sends_sigterm_then_removes_the_pod(cluster: Cluster) -> None:
    # The program notes SIGTERM in its log, then exits cleanly.
    script = (
        "import signal,sys,time\n"
        "def bye(*a):\n"
        "    print('got SIGTERM', flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    cluster.create("term", {"name": "main", "image": "x", "command": [PY, "-c", script]})
    await cluster.until(lambda: "up" in (cluster.kubelet.logs("default", "term", None, None) or ""))
    pid = cluster.kubelet._by_name[("default", "term")].containers[0].process.pid  # type: ignore[union-attr]
    started = time.monotonic()
    mark_deleted(cluster, "term", grace=30)
    await cluster.until(lambda: cluster.pod("term") is None)
    assert time.monotonic() - started < 5  # exited on SIGTERM, no wait for the grace period
    assert not alive(pid)
    assert "Killing" in cluster.reasons("term")


async def test_deletion_kills_a_process_ignoring_sigterm_after_grace(cluster: Cluster) -> None:
    script = "import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(60)\n"
    cluster.create("stubborn", {"name": "main", "image": "x", "command": [PY, "-c", script]})
    await cluster.until(
        lambda: "up" in (cluster.kubelet.logs("default", "stubborn", None, None) or "")
    )
    worker = cluster.kubelet._by_name[("default", "stubborn")]
    pid = worker.containers[0].process.pid  # type: ignore[union-attr]
    started = time.monotonic()
    mark_deleted(cluster, "stubborn", grace=1)
    await cluster.until(lambda: cluster.pod("stubborn") is None, timeout=10)
    took = time.monotonic() - started
    assert 0.9 <= took < 5
    assert not alive(pid)
