"""Reading pods and Events: where a pod serves, why a start failed, what the spawn page says.

First as dicts shaped like a real API server's, then with the statuses
kubesim's kubelet really reports for a missing image, a crash loop and a
pod too big for any node.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from control.kube import Kube, Object
from control.manifests import pod_manifest
from control.pod_state import progress_message, ready_target, start_failure
from control.settings import Resources, SpawnerSettings

NAMESPACE = "podgate"


def pod(
    *,
    ready: bool = True,
    ip: str | None = "10.1.2.3",
    deleting: bool = False,
    phase: str = "Running",
    containers: list[dict[str, Any]] | None = None,
    scheduled: dict[str, Any] | None = None,
) -> Object:
    metadata: dict[str, Any] = {"name": "jupyter-ada"}
    if deleting:
        metadata["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if scheduled is not None:
        conditions.append({"type": "PodScheduled", **scheduled})
    status: dict[str, Any] = {"phase": phase, "conditions": conditions}
    if ip:
        status["podIP"] = ip
    if containers is not None:
        status["containerStatuses"] = containers
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "notebook", "image": "img:1"}]},
        "status": status,
    }


def test_ready_target_only_for_ready_pods_with_an_address_not_deleting() -> None:
    assert ready_target(pod(), 8888) == "http://10.1.2.3:8888"
    assert ready_target(pod(ip="fd00::5"), 80) == "http://[fd00::5]:80"
    assert ready_target(pod(ready=False), 8888) is None
    assert ready_target(pod(ip=None), 8888) is None
    assert ready_target(pod(deleting=True), 8888) is None
    assert ready_target({"metadata": {"name": "x"}}, 8888) is None


def test_image_that_cannot_be_pulled() -> None:
    for reason in ("ErrImagePull", "ImagePullBackOff"):
        failure = start_failure(
            pod(
                ready=False,
                phase="Pending",
                containers=[
                    {
                        "name": "notebook",
                        "image": "nope:9",
                        "state": {"waiting": {"reason": reason}},
                    }
                ],
            )
        )
        assert failure is not None
        assert failure.reason == "image_pull"
        assert failure.message == "the image nope:9 cannot be pulled"


def test_crash_loop_names_the_exit_code() -> None:
    failure = start_failure(
        pod(
            ready=False,
            containers=[
                {
                    "name": "notebook",
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}},
                }
            ],
        )
    )
    assert failure is not None and failure.reason == "crash_loop"
    assert failure.message == "the server keeps crashing: exit code 3"


def test_first_crash_is_not_yet_a_loop_but_a_repeat_is() -> None:
    first = {"name": "notebook", "restartCount": 0, "state": {"terminated": {"exitCode": 1}}}
    assert start_failure(pod(ready=False, containers=[first])) is None
    again = {**first, "restartCount": 1}
    failure = start_failure(pod(ready=False, containers=[again]))
    assert failure is not None and failure.reason == "crash_loop"


def test_out_of_memory() -> None:
    status = {
        "name": "notebook",
        "restartCount": 1,
        "state": {"running": {}},
        "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
    }
    failure = start_failure(pod(ready=False, containers=[status]))
    assert failure is not None and failure.reason == "out_of_memory"
    assert "memory" in failure.message


def test_unschedulable_says_why() -> None:
    failure = start_failure(
        pod(
            ready=False,
            ip=None,
            phase="Pending",
            scheduled={
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient cpu.",
            },
        )
    )
    assert failure is not None and failure.reason == "unschedulable"
    assert failure.message == "no node has room: 0/1 nodes are available: 1 Insufficient cpu."


def _unschedulable(message: str) -> dict[str, object]:
    scheduled = {"status": "False", "reason": "Unschedulable", "message": message}
    return pod(ready=False, ip=None, phase="Pending", scheduled=scheduled)


def test_a_joining_node_is_waited_for_and_wait_mode_leaves_it_to_the_timeout() -> None:
    # The real scheduler's words while the only node is still joining.
    joining = _unschedulable(
        "0/1 nodes are available: 1 node(s) had untolerated taint "
        "{node.kubernetes.io/not-ready: }. preemption: 0/1 nodes are available: "
        "1 Preemption is not helpful for scheduling."
    )
    assert start_failure(joining) is None
    full = _unschedulable("0/1 nodes are available: 1 Insufficient cpu.")
    assert start_failure(full) is not None
    assert start_failure(full, wait_unschedulable=True) is None


def test_exited_server() -> None:
    for phase in ("Failed", "Succeeded"):
        failure = start_failure(pod(ready=False, phase=phase))
        assert failure is not None and failure.reason == "exited"


def test_healthy_and_starting_pods_have_no_failure() -> None:
    assert start_failure(pod()) is None
    creating = {"name": "notebook", "state": {"waiting": {"reason": "ContainerCreating"}}}
    assert start_failure(pod(ready=False, phase="Pending", containers=[creating])) is None
    assert start_failure({}) is None


def event(reason: str, message: str = "", kind: str = "Normal") -> Object:
    return {"reason": reason, "message": message, "type": kind, "involvedObject": {}}


def test_progress_messages_follow_a_start_in_order() -> None:
    steps = [
        event("Scheduled", "Successfully assigned podgate/jupyter-ada to node-1"),
        event("Pulling", 'Pulling image "img:1"'),
        event("Pulled", 'Successfully pulled image "img:1"'),
        event("Created", "Created container notebook"),
        event("Started", "Started container notebook"),
    ]
    seen = [progress_message(e) for e in steps]
    assert all(s is not None for s in seen)
    percents = [s[0] for s in seen if s]
    assert percents == sorted(percents) and percents[0] > 0 and percents[-1] < 100
    assert seen[0] == (20, "Found a node")
    warning = progress_message(event("FailedScheduling", "0/1 nodes", "Warning"))
    assert warning == (10, "Waiting for a node with room")
    assert progress_message(event("Killing", "Stopping container notebook")) is None
    assert progress_message({}) is None
    odd = progress_message(event("SomethingNew", "x"))
    assert odd == (15, "Still starting")


# --- with kubesim's kubelet ------------------------------------------------------------


async def run_until(kube: Kube, manifest: Object, seconds: float = 10.0) -> Object:
    """Create the pod and read it until start_failure says something (bounded)."""
    await kube.create("pods", NAMESPACE, manifest)
    name = manifest["metadata"]["name"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        current = await kube.get("pods", NAMESPACE, name)
        if start_failure(current) is not None:
            return current
        await asyncio.sleep(0.1)
    raise AssertionError(f"no failure within {seconds}s: {current.get('status')}")


def plain(**changes: Any) -> SpawnerSettings:
    return SpawnerSettings(namespace=NAMESPACE, jupyter_args=False, readiness_path=None, **changes)


async def test_kubesim_missing_program_is_an_image_that_cannot_be_pulled(kube: Kube) -> None:
    manifest = pod_manifest("ada", plain(image="no-such-program-podgate:1"), None, "t")
    current = await run_until(kube, manifest)
    failure = start_failure(current)
    assert failure is not None and failure.reason == "image_pull"
    assert "no-such-program-podgate:1" in failure.message
    assert ready_target(current, 8888) is None


async def test_kubesim_crash_loop(kube: Kube) -> None:
    settings = plain(image="python:3", cmd=(sys.executable, "-c", "raise SystemExit(3)"))
    current = await run_until(kube, pod_manifest("bob", settings, None, "t"))
    failure = start_failure(current)
    assert failure is not None and failure.reason == "crash_loop"
    assert failure.message == "the server keeps crashing: exit code 3"


async def test_kubesim_unschedulable(kube: Kube) -> None:
    settings = plain(image="kubesim/echo", resources=Resources(cpu_request="5000"))
    current = await run_until(kube, pod_manifest("cat", settings, None, "t"))
    failure = start_failure(current)
    assert failure is not None and failure.reason == "unschedulable"
    assert failure.message.startswith("no node has room: ")
    assert "cpu" in failure.message


async def test_kubesim_echo_pod_becomes_a_target_and_events_read_as_progress(kube: Kube) -> None:
    manifest = pod_manifest("dan", plain(image="kubesim/echo"), None, "t")
    await kube.create("pods", NAMESPACE, manifest)
    deadline = time.monotonic() + 10
    target = None
    while target is None and time.monotonic() < deadline:
        current = await kube.get("pods", NAMESPACE, "jupyter-dan")
        target = ready_target(current, 8888)
        await asyncio.sleep(0.05)
    assert target == f"http://{current['status']['podIP']}:8888"
    events = await kube.list("events", NAMESPACE, field_selector="involvedObject.name=jupyter-dan")
    messages = [progress_message(e) for e in events.items]
    assert any(m is not None and m[1].startswith("Found a node") for m in messages)
