"""Events the simulated kubelet and scheduler record, read over HTTP.

A spawner's progress page and `kubectl describe` show these: lifecycle
reasons in order, involvedObject pointing at the pod and container, kubelet
Events stamped with first/lastTimestamp and scheduler Events with eventTime,
repeats folded into one Event with a growing count. kubectl describe and
get events show the same story.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from kubesim.kubelet import NodeCapacity

PY = sys.executable
LIFECYCLE = ["Scheduled", "Pulling", "Pulled", "Created", "Started"]


def container(command: str, **extra: Any) -> dict[str, Any]:
    return {"name": "main", "image": "python:3.11", "command": [PY, "-c", command], **extra}


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


async def test_lifecycle_events_arrive_in_order_on_the_event_watch(sim: Any) -> None:
    created = await sim.create("web", container("import time; time.sleep(60)"))
    arrived: list[str] = []

    def note(event: Any) -> bool:
        arrived.append(event.reason)
        return event.reason == "Started"

    await sim.until_event("web", note)
    assert arrived == LIFECYCLE
    events = await sim.events("web")
    assert [e.reason for e in events] == LIFECYCLE
    scheduled, pulling, pulled, _, started = events
    # The scheduler's Event uses eventTime; the kubelet's use first/lastTimestamp.
    assert scheduled.source.component == "default-scheduler" and scheduled.type == "Normal"
    assert scheduled.event_time is not None
    assert scheduled.first_timestamp is None and scheduled.last_timestamp is None
    assert scheduled.message == "Successfully assigned default/web to kubesim-node"
    for event in (pulling, pulled, started):
        assert event.source.component == "kubelet" and event.source.host == "kubesim-node"
        assert event.event_time is None
        assert event.first_timestamp is not None and event.last_timestamp is not None
        assert event.count == 1 and event.type == "Normal"
    assert pulling.message == 'Pulling image "python:3.11"'
    assert started.message == "Started container main"
    assert started.involved_object.kind == "Pod" and started.involved_object.name == "web"
    assert started.involved_object.uid == created.metadata.uid
    assert started.involved_object.field_path == "spec.containers{main}"
    assert started.first_timestamp >= scheduled.event_time.replace(microsecond=0)


async def test_deletion_adds_a_killing_event_after_the_lifecycle(sim: Any) -> None:
    await sim.create("short", container("import time; time.sleep(60)"))
    await sim.until("short", is_ready)
    deleting = await sim.delete("short", grace=1)
    await sim.until_deleted("short", deleting.metadata.resource_version)
    reasons = await sim.reasons("short")
    assert reasons == [*LIFECYCLE, "Killing"]
    killing = (await sim.events("short"))[-1]
    assert killing.message == "Stopping container main" and killing.type == "Normal"


async def test_repeated_back_off_is_one_event_with_a_growing_count(sim: Any) -> None:
    await sim.create("crashy", container("raise SystemExit(1)"))
    back_off = await sim.until_event("crashy", lambda e: e.reason == "BackOff" and e.count >= 3)
    assert back_off.type == "Warning"
    assert back_off.message.startswith("Back-off restarting failed container main in pod crashy")
    # Second resolution, as on the wire: fast repeats may share the first second.
    assert back_off.last_timestamp >= back_off.first_timestamp
    reasons = await sim.reasons("crashy")
    assert reasons.count("BackOff") == 1
    # Each restart repeats Created and Started, folded into the same Events.
    started = [e for e in await sim.events("crashy") if e.reason == "Started"]
    assert len(started) == 1 and started[0].count >= 3
    assert reasons.index("Started") < reasons.index("BackOff")
    # An Event deleted by a client (or expired) is recreated, not lost.
    await sim.core.delete_namespaced_event(back_off.metadata.name, "default")
    again = await sim.until_event(
        "crashy", lambda e: e.reason == "BackOff" and e.metadata.name != back_off.metadata.name
    )
    assert again.count == 1


async def test_events_of_a_pod_are_filtered_by_field_selector(sim: Any) -> None:
    await sim.create("one", container("import time; time.sleep(60)"))
    await sim.create("two", container("import time; time.sleep(60)"))
    await sim.until("one", is_ready)
    await sim.until("two", is_ready)
    only_two = await sim.core.list_namespaced_event(
        "default", field_selector="involvedObject.name=two,reason=Started"
    )
    assert [(e.involved_object.name, e.reason) for e in only_two.items] == [("two", "Started")]
    warnings = await sim.core.list_namespaced_event("default", field_selector="type=Warning")
    assert warnings.items == []


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_kubectl_shows_the_kubelet_and_scheduler_events(
    make_sim: Any, tmp_path: Path
) -> None:
    # A long back-off holds the crashed pod in CrashLoopBackOff while kubectl looks.
    node = NodeCapacity("small", cpu_millicores=500)
    sim = await make_sim(tls=True, nodes=(node,), backoff_initial=20, backoff_max=20)
    await sim.create("crashy", container("raise SystemExit(1)"))
    await sim.create("huge", container("pass", resources={"requests": {"cpu": "2"}}))
    await sim.until_event("crashy", lambda e: e.reason == "BackOff")
    await sim.until_event("huge", lambda e: e.reason == "FailedScheduling")
    kubeconfig = sim.cluster.write_kubeconfig(tmp_path / "kubectl-config")

    async def kubectl(*args: str) -> str:
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "HOME": str(tmp_path)}
        process = await asyncio.create_subprocess_exec(
            "kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache"),
            *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(process.communicate(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, err.decode()
        return out.decode()

    described = await kubectl("describe", "pod", "crashy")
    assert "Back-off restarting failed container main in pod crashy" in described
    assert "Started container main" in described
    assert "Last State:     Terminated" in described and "Exit Code:    1" in described
    described = await kubectl("describe", "pod", "huge")
    assert "FailedScheduling" in described
    assert "0/1 nodes are available: 1 Insufficient cpu." in described
    rows = (await kubectl("get", "pods")).splitlines()[1:]
    states = {row.split()[0]: row.split()[2] for row in rows}
    assert states == {"crashy": "CrashLoopBackOff", "huge": "Pending"}
    events = await kubectl("get", "events", "--field-selector", "involvedObject.name=crashy")
    assert "BackOff" in events and "pod/crashy" in events
