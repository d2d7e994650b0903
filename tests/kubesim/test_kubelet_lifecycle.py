"""The simulated kubelet driven through its store seam: what a spawner would see.

These tests start a real object store and a real SimKubelet, create pods the
way the API server does, and read back status and Events. Containers are
real local processes on their own 127.x.y.z address.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
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

    async def until(self, check: Callable[[], Any], within: float = 10.0) -> Any:
        """Wait (bounded) until check() returns something truthy; return it."""
        deadline = time.monotonic() + within
        while True:
            self.changed.clear()
            result = check()
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting; last pod states: {self.summary()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.2))

    async def until_pod(self, name: str, check: Callable[[Obj], Any], within: float = 10.0) -> Obj:
        def ok() -> Obj | None:
            pod = self.pod(name)
            return pod if pod is not None and check(pod) else None

        return await self.until(ok, within)

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
    started = next(e for e in cluster.events("web") if e["reason"] == "Started")
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


def log_of(cluster: Cluster, name: str, container: str | None = None) -> str:
    return cluster.kubelet.logs("default", name, container, None) or ""


async def pids_in_log(cluster: Cluster, name: str, count: int = 1) -> list[int]:
    """Pids a test program printed as 'pid N' lines."""
    await cluster.until(lambda: log_of(cluster, name).count("pid ") >= count)
    return [int(line.split()[1]) for line in log_of(cluster, name).splitlines() if "pid " in line]


async def test_deletion_sends_sigterm_then_removes_the_pod(cluster: Cluster) -> None:
    script = (
        "import os,signal,sys,time\n"
        "def bye(*a):\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('pid', os.getpid(), flush=True)\n"
        "time.sleep(60)\n"
    )
    cluster.create("term", {"name": "main", "image": "x", "command": [PY, "-c", script]})
    (pid,) = await pids_in_log(cluster, "term")
    phases: list[str | None] = []
    cluster.store.subscribe("pods", lambda kind, pod: phases.append(phase(pod)))
    started = time.monotonic()
    mark_deleted(cluster, "term", grace=30)
    await cluster.until(lambda: cluster.pod("term") is None)
    assert phases[-2:] == ["Succeeded", "Succeeded"]  # the last status, then DELETED
    assert time.monotonic() - started < 5  # it exited on SIGTERM: no wait for the grace period
    assert not alive(pid)
    killing = [e for e in cluster.events("term") if e["reason"] == "Killing"]
    assert killing and killing[0]["message"] == "Stopping container main"


async def test_deletion_kills_a_process_ignoring_sigterm_after_grace(cluster: Cluster) -> None:
    script = (
        "import os,signal,time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('pid', os.getpid(), flush=True)\n"
        "time.sleep(60)\n"
    )
    cluster.create("stubborn", {"name": "main", "image": "x", "command": [PY, "-c", script]})
    (pid,) = await pids_in_log(cluster, "stubborn")
    started = time.monotonic()
    mark_deleted(cluster, "stubborn", grace=1)
    await cluster.until(lambda: cluster.pod("stubborn") is None, within=10)
    assert 0.9 <= time.monotonic() - started < 5
    assert not alive(pid)


async def test_stop_leaves_no_process_behind(make_node: Callable[..., Any]) -> None:
    cluster = await make_node()
    # The container starts a grandchild in its process group, as a shell would.
    script = (
        "import os,subprocess,sys,time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('pid', os.getpid(), flush=True)\n"
        "print('pid', child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    cluster.create("family", {"name": "main", "image": "x", "command": [PY, "-c", script]})
    pids = await pids_in_log(cluster, "family", count=2)
    assert all(alive(pid) for pid in pids)
    await cluster.kubelet.stop()
    assert not any(alive(pid) for pid in pids)


async def test_crashing_container_goes_into_crash_loop_back_off(cluster: Cluster) -> None:
    crash = {"name": "main", "image": "x", "command": [PY, "-c", "raise SystemExit(1)"]}
    cluster.create("crashy", crash)

    def looping(pod: Obj) -> bool:
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        waiting = statuses[0].get("state", {}).get("waiting", {})
        return waiting.get("reason") == "CrashLoopBackOff" and statuses[0]["restartCount"] >= 1

    pod = await cluster.until_pod("crashy", looping)
    (container,) = pod["status"]["containerStatuses"]
    assert pod["status"]["phase"] == "Running"
    assert container["ready"] is False
    last = container["lastState"]["terminated"]
    assert last["exitCode"] == 1 and last["reason"] == "Error"
    assert "back-off" in container["state"]["waiting"]["message"]
    back_off = [e for e in cluster.events("crashy") if e["reason"] == "BackOff"]
    assert back_off[0]["type"] == "Warning"
    assert back_off[0]["message"].startswith("Back-off restarting failed container main")
    # Repeats are aggregated into one Event with a growing count.
    await cluster.until(
        lambda: any(e["reason"] == "BackOff" and e["count"] >= 2 for e in cluster.events("crashy"))
    )
    assert len([e for e in cluster.events("crashy") if e["reason"] == "BackOff"]) == 1


async def test_restart_policy_never_ends_succeeded_or_failed(cluster: Cluster) -> None:
    cluster.create("ok", {"name": "main", "image": "x", "command": ["true"]}, restartPolicy="Never")
    cluster.create(
        "bad",
        {"name": "main", "image": "x", "command": [PY, "-c", "raise SystemExit(3)"]},
        restartPolicy="Never",
    )
    ok = await cluster.until_pod("ok", lambda p: phase(p) == "Succeeded")
    bad = await cluster.until_pod("bad", lambda p: phase(p) == "Failed")
    assert state(ok)["terminated"]["reason"] == "Completed"
    assert state(ok)["terminated"]["exitCode"] == 0
    assert state(bad)["terminated"] == {
        **state(bad)["terminated"],
        "exitCode": 3,
        "reason": "Error",
    }
    ready = condition(bad, "Ready")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "PodCompleted"
    assert bad["status"]["containerStatuses"][0]["restartCount"] == 0


async def test_missing_executable_is_an_image_that_cannot_be_pulled(cluster: Cluster) -> None:
    cluster.create(
        "nopull", {"name": "main", "image": "ghost:1", "command": ["no-such-program-kubesim"]}
    )
    waiting_reason = lambda p: state(p).get("waiting", {}).get("reason")  # noqa: E731
    pod = await cluster.until_pod("nopull", lambda p: waiting_reason(p) == "ErrImagePull")
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["podIP"]
    pod = await cluster.until_pod("nopull", lambda p: waiting_reason(p) == "ImagePullBackOff")
    assert pod["status"]["phase"] == "Pending"
    warnings = {
        (e["reason"], e["message"]) for e in cluster.events("nopull") if e["type"] == "Warning"
    }
    assert ("Failed", "Error: ErrImagePull") in warnings
    assert ("Failed", "Error: ImagePullBackOff") in warnings
    assert ("BackOff", 'Back-off pulling image "ghost:1"') in warnings


async def test_image_without_command_runs_the_configured_program(
    make_node: Callable[..., Any],
) -> None:
    script = "import time; print('from the image table', flush=True); time.sleep(60)"
    cluster = await make_node(image_commands={"example/notebook": [PY, "-c", script]})
    cluster.create("table", {"name": "main", "image": "example/notebook:2024"})
    await cluster.until_pod("table", is_ready)
    await cluster.until(lambda: "from the image table" in log_of(cluster, "table"))
    # Without an entry, the image's name is the program: none here, so it cannot be pulled.
    cluster.create("unknown", {"name": "main", "image": "example/not-a-program-kubesim:1"})
    await cluster.until_pod(
        "unknown", lambda p: state(p).get("waiting", {}).get("reason") == "ErrImagePull"
    )


async def test_pod_that_does_not_fit_waits_until_capacity_frees(
    make_node: Callable[..., Any],
) -> None:
    cluster = await make_node(nodes=(NodeCapacity("small", cpu_millicores=1000),))
    big = sleeper(resources={"requests": {"cpu": "800m", "memory": "64Mi"}})
    cluster.create("first", big, terminationGracePeriodSeconds=0)
    await cluster.until_pod("first", is_ready)
    cluster.create("second", sleeper(resources={"requests": {"cpu": "0.5"}}))

    def unschedulable(pod: Obj) -> Obj | None:
        cond = condition(pod, "PodScheduled")
        return cond if cond and cond["reason"] == "Unschedulable" else None

    pod = await cluster.until_pod("second", unschedulable)
    assert pod["status"]["phase"] == "Pending"
    assert "podIP" not in pod["status"]
    assert unschedulable(pod)["message"] == "0/1 nodes are available: 1 Insufficient cpu."  # type: ignore[index]
    failed = [e for e in cluster.events("second") if e["reason"] == "FailedScheduling"]
    assert failed[0]["type"] == "Warning"
    assert failed[0]["message"] == "0/1 nodes are available: 1 Insufficient cpu."
    mark_deleted(cluster, "first", grace=0)
    pod = await cluster.until_pod("second", is_ready)
    assert pod["spec"]["nodeName"] == "small"
    assert condition(pod, "PodScheduled")["status"] == "True"  # type: ignore[index]


async def test_env_from_downward_api_secrets_and_configmaps(cluster: Cluster) -> None:
    cluster.store.create(
        "secrets", "default", {"metadata": {"name": "creds"}, "data": {"token": "czNjcjN0"}}
    )
    cluster.store.create(
        "configmaps", "default", {"metadata": {"name": "settings"}, "data": {"mode": "lab"}}
    )
    script = "import os,sys; print('|'.join(sys.argv[1:]), flush=True); import time; time.sleep(60)"
    cluster.create(
        "envy",
        {
            "name": "main",
            "image": "x",
            "command": [PY, "-c", script],
            "args": [
                "$(NAME)",
                "$(NS)",
                "$(TOKEN)",
                "$(MODE)",
                "$$(NAME)",
                "$(UNSET)",
                "$(GREETING)",
            ],
            "env": [
                {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {
                    "name": "TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}},
                },
                {
                    "name": "MODE",
                    "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}},
                },
                {"name": "GREETING", "value": "hello $(NAME)"},
            ],
        },
    )
    await cluster.until(lambda: "|" in log_of(cluster, "envy"))
    assert log_of(cluster, "envy").strip() == "envy|default|s3cr3t|lab|$(NAME)|$(UNSET)|hello envy"


async def test_missing_secret_is_a_container_config_error(cluster: Cluster) -> None:
    env = [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]
    cluster.create("nosecret", sleeper(env=env))
    pod = await cluster.until_pod(
        "nosecret",
        lambda p: state(p).get("waiting", {}).get("reason") == "CreateContainerConfigError",
    )
    assert state(pod)["waiting"]["message"] == 'secret "absent" not found'
    assert pod["status"]["phase"] == "Pending"
    assert any(
        e["reason"] == "Failed" and e["message"] == 'Error: secret "absent" not found'
        for e in cluster.events("nosecret")
    )


async def test_paused_kubelet_makes_no_progress_until_resumed(cluster: Cluster) -> None:
    cluster.kubelet.set_paused(True)
    cluster.create("later", sleeper())
    await asyncio.sleep(0.5)
    pod = cluster.pod("later")
    assert pod is not None
    assert not (pod.get("status") or {}).get("podIP")
    assert cluster.events("later") == []
    cluster.kubelet.set_paused(False)
    await cluster.until_pod("later", is_ready)


async def test_memory_limit_is_enforced_as_oom_kill(cluster: Cluster) -> None:
    hog = (
        "import time\n"
        "block = bytearray(200 * 2**20)\n"
        "block[::4096] = b'x' * len(block[::4096])\n"
        "time.sleep(30)\n"
    )
    cluster.create(
        "hog",
        {
            "name": "main",
            "image": "x",
            "command": [PY, "-c", hog],
            "resources": {"limits": {"memory": "64Mi"}},
        },
        restartPolicy="Never",
    )
    pod = await cluster.until_pod("hog", lambda p: phase(p) == "Failed", within=15)
    terminated = state(pod)["terminated"]
    assert terminated["reason"] == "OOMKilled"
    assert terminated["exitCode"] == 137


async def test_claim_is_bound_and_its_files_survive_the_pod(cluster: Cluster) -> None:
    cluster.create(
        "early",
        sleeper(),
        volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": "claim-ada"}}],
    )
    pod = await cluster.until_pod(
        "early", lambda p: (condition(p, "PodScheduled") or {}).get("reason") == "Unschedulable"
    )
    assert (
        'persistentvolumeclaim "claim-ada" not found' in condition(pod, "PodScheduled")["message"]
    )  # type: ignore[index]
    cluster.store.create(
        "persistentvolumeclaims",
        "default",
        {
            "metadata": {"name": "claim-ada"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    await cluster.until(
        lambda: (
            (cluster.store.get("persistentvolumeclaims", "default", "claim-ada") or {})
            .get("status", {})
            .get("phase")
            == "Bound"
        )
    )
    await cluster.until_pod("early", is_ready)
    mark_deleted(cluster, "early", grace=0)
    await cluster.until(lambda: cluster.pod("early") is None)
    write = "import os; open(os.environ['KUBESIM_VOLUME_HOME'] + '/note', 'w').write('kept')"
    read = "import os; print(open(os.environ['KUBESIM_VOLUME_HOME'] + '/note').read(), flush=True)"
    volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-ada"}}]
    mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
    cluster.create(
        "writer",
        {"name": "main", "image": "x", "command": [PY, "-c", write], "volumeMounts": mounts},
        volumes=volumes,
        restartPolicy="Never",
    )
    await cluster.until_pod("writer", lambda p: phase(p) == "Succeeded")
    mark_deleted(cluster, "writer", grace=0)
    await cluster.until(lambda: cluster.pod("writer") is None)
    cluster.create(
        "reader",
        {"name": "main", "image": "x", "command": [PY, "-c", read], "volumeMounts": mounts},
        volumes=volumes,
        restartPolicy="Never",
    )
    await cluster.until_pod("reader", lambda p: phase(p) == "Succeeded")
    assert log_of(cluster, "reader").strip() == "kept"


async def test_failing_readiness_probe_keeps_pod_unready_with_unhealthy_events(
    cluster: Cluster,
) -> None:
    cluster.create(
        "deaf",
        sleeper(
            readinessProbe={"tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 1}
        ),
    )
    await cluster.until(
        lambda: any(e["reason"] == "Unhealthy" for e in cluster.events("deaf")), within=10
    )
    pod = cluster.pod("deaf")
    assert pod is not None and pod["status"]["phase"] == "Running" and not is_ready(pod)
    ready = condition(pod, "Ready")
    assert ready["reason"] == "ContainersNotReady"  # type: ignore[index]
    assert ready["message"] == "containers with unready status: [main]"  # type: ignore[index]
    unhealthy = next(e for e in cluster.events("deaf") if e["reason"] == "Unhealthy")
    assert unhealthy["type"] == "Warning"
    assert unhealthy["message"].startswith("Readiness probe failed: dial tcp ")


async def test_usage_is_measured_from_the_pod_processes(cluster: Cluster) -> None:
    script = "import os,time; print('pid', os.getpid(), flush=True); time.sleep(60)"
    cluster.create("measured", {"name": "main", "image": "x", "command": [PY, "-c", script]})
    await pids_in_log(cluster, "measured")  # the interpreter is up, not just exec'd
    usage = cluster.kubelet.usage_source.usage("default", "measured")
    assert usage is not None
    assert usage["cpu"].endswith("m")
    assert usage["memory"].endswith("Ki") and int(usage["memory"][:-2]) > 1000
    assert cluster.kubelet.usage_source.usage("default", "no-such-pod") is None


async def test_two_hundred_pods_each_with_its_own_process(make_node: Callable[..., Any]) -> None:
    cluster = await make_node()
    ready_pods: set[str] = set()
    everyone = asyncio.Event()

    def note(_: str, pod: Obj) -> None:
        if is_ready(pod):
            ready_pods.add(pod["metadata"]["name"])
        if len(ready_pods) == 200:
            everyone.set()

    cluster.store.subscribe("pods", note)
    started = time.monotonic()
    # `$$$$` because Kubernetes expansion turns `$$` into `$`: the shell sees `$$`.
    shell = {"name": "main", "image": "x", "command": ["sh", "-c", "echo pid $$$$; exec sleep 60"]}
    for i in range(200):
        cluster.create(f"many-{i}", shell)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(everyone.wait(), 20)
    assert len(ready_pods) == 200, f"only {len(ready_pods)} ready"
    assert time.monotonic() - started < 15
    pids = set()
    for i in range(200):
        pids.update(await pids_in_log(cluster, f"many-{i}"))
    assert len(pids) == 200
    await cluster.kubelet.stop()
    assert not any(alive(pid) for pid in pids)
