"""Pod status as the simulated kubelet reports it, read over HTTP with kubernetes_asyncio.

Phase, conditions, containerStatuses (waiting/running/terminated with their
reasons), restartCount and lastState, podIP: what a spawner waits on.
Containers are real local processes; every observation is a watch or a GET.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

PY = sys.executable

# Serves HTTP on the pod's address ($(POD_IP) in args) after a short delay,
# so the pod is seen Running but not yet Ready first.
SLOW_SERVER = (
    "import http.server,sys,time\n"
    "time.sleep(float(sys.argv[3]))\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = ('hello from ' + self.path).encode()\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()\n"
)
POD_IP_ENV = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def server(port: int, delay: float = 0.4, **extra: Any) -> dict[str, Any]:
    return {
        "name": "notebook",
        "image": "jupyter/base-notebook:latest",
        "command": [PY, "-c", SLOW_SERVER],
        "args": ["$(POD_IP)", str(port), str(delay)],
        "env": [POD_IP_ENV],
        "ports": [{"containerPort": port, "name": "http"}],
        **extra,
    }


def sleeper(**extra: Any) -> dict[str, Any]:
    return {
        "name": "main",
        "image": "x",
        "command": [PY, "-c", "import time; time.sleep(60)"],
    } | extra


def conditions(pod: Any) -> dict[str, Any]:
    return {c.type: c for c in (pod.status.conditions or [])} if pod.status else {}


def is_ready(pod: Any) -> bool:
    ready = conditions(pod).get("Ready")
    return ready is not None and ready.status == "True"


def waiting_reason(pod: Any) -> str | None:
    statuses = pod.status.container_statuses if pod.status else None
    waiting = statuses[0].state.waiting if statuses else None
    return waiting.reason if waiting else None


def phase(pod: Any) -> str | None:
    return pod.status.phase if pod.status else None


async def test_http_probe_pod_goes_pending_running_then_ready(sim: Any, pod_port: int) -> None:
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1}
    created = await sim.create(
        "web",
        server(
            pod_port,
            readinessProbe=probe,
            resources={"requests": {"cpu": "100m", "memory": "64Mi"}},
        ),
    )
    assert created.status.phase == "Pending"
    seen: list[tuple[str | None, bool]] = []

    def note(pod: Any) -> bool:
        if not seen or seen[-1] != (phase(pod), is_ready(pod)):
            seen.append((phase(pod), is_ready(pod)))
        return is_ready(pod)

    pod = await sim.until("web", note)
    # A spawner sees Running-but-unready while the server is still starting.
    assert ("Running", False) in seen and seen[-1] == ("Running", True)
    assert seen.index(("Running", False)) < seen.index(("Running", True))
    status = pod.status
    assert status.pod_ip.startswith("127.") and status.pod_ip not in ("127.0.0.1", "127.0.1.1")
    assert [ip.ip for ip in status.pod_ips] == [status.pod_ip]
    assert status.host_ip and status.start_time is not None
    assert status.qos_class == "Burstable"
    assert pod.spec.node_name == "kubesim-node"
    assert {kind: c.status for kind, c in conditions(pod).items()} == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    (container,) = status.container_statuses
    assert container.name == "notebook" and container.image == "jupyter/base-notebook:latest"
    assert container.image_id and container.container_id
    assert container.ready and container.started and container.restart_count == 0
    assert container.state.running.started_at is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{status.pod_ip}:{pod_port}/lab") as reply,
    ):
        assert await reply.text() == "hello from /lab"


async def test_tcp_probe_and_no_probe_both_turn_ready(sim: Any, pod_port: int) -> None:
    await sim.create("tcp", server(pod_port, readinessProbe={"tcpSocket": {"port": pod_port}}))
    await sim.create("plain", sleeper())
    tcp = await sim.until("tcp", is_ready)
    plain = await sim.until("plain", is_ready)
    assert tcp.status.phase == plain.status.phase == "Running"
    assert plain.status.container_statuses[0].state.running is not None
    assert plain.status.qos_class == "BestEffort"


async def test_exec_probe_readiness_follows_its_exit_code(sim: Any, shared_dir: Path) -> None:
    flag = shared_dir / "ready-flag"  # the probe runs as the pod's user: a place it can reach
    check = [PY, "-c", f"import os,sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 1)"]
    limits = {"limits": {"cpu": "500m", "memory": "128Mi"}}
    await sim.create("exec", sleeper(readinessProbe={"exec": {"command": check}}, resources=limits))
    pod = await sim.until("exec", lambda p: phase(p) == "Running")
    assert not is_ready(pod)
    assert pod.status.qos_class == "Guaranteed"  # limits alone: requests default to them
    flag.write_text("")
    await sim.until("exec", is_ready)


async def test_failing_probe_keeps_the_pod_unready_with_unhealthy_warnings(sim: Any) -> None:
    probe = {"tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 1}
    await sim.create("deaf", sleeper(readinessProbe=probe))
    unhealthy = await sim.until_event("deaf", lambda e: e.reason == "Unhealthy")
    assert unhealthy.type == "Warning"
    assert unhealthy.message.startswith("Readiness probe failed: dial tcp ")
    assert "connection refused" in unhealthy.message
    pod = await sim.core.read_namespaced_pod("deaf", "default")
    assert pod.status.phase == "Running" and not is_ready(pod)
    ready = conditions(pod)["Ready"]
    assert ready.reason == "ContainersNotReady"
    assert ready.message == "containers with unready status: [main]"
    assert pod.status.container_statuses[0].ready is False


async def test_http_probe_answering_503_keeps_the_pod_unready(sim: Any, pod_port: int) -> None:
    # The probe path answers 503: the pod serves but is not ready.
    script = SLOW_SERVER.replace("self.send_response(200)", "self.send_response(503)")
    container = server(
        pod_port,
        0,
        readinessProbe={"httpGet": {"path": "/", "port": pod_port}, "periodSeconds": 1},
        command=[PY, "-c", script],
    )
    await sim.create("sick", container)
    event = await sim.until_event("sick", lambda e: "statuscode" in e.message)
    assert event.message == "Readiness probe failed: HTTP probe failed with statuscode: 503"
    pod = await sim.core.read_namespaced_pod("sick", "default")
    assert not is_ready(pod)


@pytest.mark.parametrize(
    ("code", "phase_", "reason"), [(0, "Succeeded", "Completed"), (3, "Failed", "Error")]
)
async def test_restart_policy_never_ends_in_a_terminal_phase(
    sim: Any, code: int, phase_: str, reason: str
) -> None:
    command = [PY, "-c", f"raise SystemExit({code})"]
    await sim.create("job", sleeper(command=command), restartPolicy="Never")
    pod = await sim.until("job", lambda p: phase(p) == phase_)
    (container,) = pod.status.container_statuses
    assert container.state.terminated.exit_code == code
    assert container.state.terminated.reason == reason
    assert container.state.terminated.finished_at is not None
    assert container.restart_count == 0 and container.ready is False
    ready = conditions(pod)["Ready"]
    assert ready.status == "False" and ready.reason == "PodCompleted"


async def test_crashing_container_goes_into_crash_loop_back_off(sim: Any) -> None:
    command = [PY, "-c", "print('crashing', flush=True); raise SystemExit(2)"]
    await sim.create("crashy", sleeper(command=command))

    def looping(pod: Any) -> bool:
        statuses = pod.status.container_statuses if pod.status else None
        return waiting_reason(pod) == "CrashLoopBackOff" and statuses[0].restart_count >= 2

    pod = await sim.until("crashy", looping)
    assert pod.status.phase == "Running"  # Always restarts: never terminal
    assert not is_ready(pod)
    (container,) = pod.status.container_statuses
    assert container.ready is False
    assert container.last_state.terminated.exit_code == 2
    assert container.last_state.terminated.reason == "Error"
    assert "back-off" in container.state.waiting.message
    assert "crashing" in await sim.log("crashy")
    # The count keeps growing while it keeps crashing.
    later = await sim.until(
        "crashy", lambda p: p.status.container_statuses[0].restart_count > container.restart_count
    )
    assert later.status.container_statuses[0].last_state.terminated.exit_code == 2


async def test_memory_limit_is_enforced_as_oom_kill(sim: Any) -> None:
    hog = (
        "import time\n"
        "block = bytearray(200 * 2**20)\n"
        "block[::4096] = b'x' * len(block[::4096])\n"
        "time.sleep(30)\n"
    )
    container = sleeper(command=[PY, "-c", hog], resources={"limits": {"memory": "64Mi"}})
    await sim.create("hog", container, restartPolicy="Never")
    pod = await sim.until("hog", lambda p: phase(p) == "Failed", within=15)
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.reason == "OOMKilled"
    assert terminated.exit_code == 137


async def test_missing_executable_is_an_image_that_cannot_be_pulled(sim: Any) -> None:
    await sim.create("nopull", sleeper(image="ghost:1", command=["no-such-program-kubesim"]))
    pod = await sim.until("nopull", lambda p: waiting_reason(p) == "ErrImagePull")
    assert pod.status.phase == "Pending" and not is_ready(pod)
    assert (
        'failed to pull image "ghost:1"' in pod.status.container_statuses[0].state.waiting.message
    )
    pod = await sim.until("nopull", lambda p: waiting_reason(p) == "ImagePullBackOff")
    assert pod.status.phase == "Pending"
    assert pod.status.container_statuses[0].state.waiting.message == (
        'Back-off pulling image "ghost:1"'
    )
    warnings = [(e.reason, e.message) for e in await sim.events("nopull") if e.type == "Warning"]
    assert warnings[0][0] == "Failed" and warnings[0][1].startswith(
        'Failed to pull image "ghost:1"'
    )
    assert warnings[1:4] == [
        ("Failed", "Error: ErrImagePull"),
        ("BackOff", 'Back-off pulling image "ghost:1"'),
        ("Failed", "Error: ImagePullBackOff"),
    ]


async def test_image_without_command_runs_the_configured_program(make_sim: Any) -> None:
    script = "import time; print('from the image table', flush=True); time.sleep(60)"
    sim = await make_sim(image_commands={"example/notebook": [PY, "-c", script]})
    await sim.create("table", {"name": "main", "image": "example/notebook:2024"})
    await sim.until("table", is_ready)
    await sim.until_log("table", lambda text: "from the image table" in text)
    # Without an entry the image's name is the program: none here, so no pull.
    await sim.create("unknown", {"name": "main", "image": "example/not-a-program-kubesim:1"})
    await sim.until("unknown", lambda p: waiting_reason(p) == "ErrImagePull")


async def test_logs_of_an_unknown_container_or_pod_are_errors(sim: Any) -> None:
    from kubernetes_asyncio.client import ApiException

    talker = sleeper(command=[PY, "-c", "print('hi', flush=True)"])
    await sim.create("talker", talker, restartPolicy="Never")
    await sim.until_log("talker", lambda text: text == "hi\n")
    with pytest.raises(ApiException) as wrong_container:
        await sim.log("talker", container="nope")
    assert wrong_container.value.status == 400
    with pytest.raises(ApiException) as no_pod:
        await sim.log("nobody")
    assert no_pod.value.status == 404
