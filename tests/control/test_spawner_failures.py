"""Spawner failure paths: each ends with the reason in words and no pod left over.

The terminal failures and the start timeout run on both API servers; the API
faults need kubesim's fault hooks (kubesim_only).
"""

from __future__ import annotations

import asyncio
import sys

import pytest
from kube_servers import RealServer, pause_nodes

from control.errors import NotFound, SpawnFailed, SpawnLimitReached
from control.kube import Kube
from control.settings import Resources
from kubesim.cluster import SimCluster
from tests.control.conftest import FaultSetter
from tests.control.test_spawner_support import NAMESPACE, echo_settings, spawner_stack, until

pytestmark = pytest.mark.both_servers

# Touches every page of 200 MiB (bytes, not a lazily zeroed bytearray), then waits.
HUNGRY = "import time; hoard = b'x' * (200 * 2**20); time.sleep(60)"


async def gone(kube: Kube, name: str) -> bool:
    try:
        await kube.get("pods", NAMESPACE, name)
    except NotFound:
        return True
    return False


@pytest.mark.parametrize(
    ("changes", "reason", "words"),
    [
        ({"image": "no-such-program-podgate:2"}, "image_pull", "the image"),
        (
            # With a probe, as real servers have: without one a running process is Ready.
            {
                "image": "python:3",
                "cmd": (sys.executable, "-c", "raise SystemExit(4)"),
                "readiness_path": "api",
            },
            "crash_loop",
            "exit code 4",
        ),
        ({"resources": Resources(cpu_request="5000")}, "unschedulable", "no node has room"),
        (
            {
                "image": "python:3",
                "cmd": (sys.executable, "-c", HUNGRY),
                "readiness_path": "api",
                "resources": Resources(memory_request="64Mi", memory_limit="64Mi"),
            },
            "out_of_memory",
            "ran out of memory",
        ),
    ],
    ids=["bad-image", "crash-loop", "unschedulable", "oom"],
)
async def test_terminal_failure_is_told_in_words_and_the_pod_deleted(
    kube: Kube, changes: dict[str, object], reason: str, words: str
) -> None:
    async with spawner_stack(kube, echo_settings(**changes)) as stack:
        await stack.spawner.start("ada")
        events = await stack.events_of("ada")
        last = events[-1]
        assert last.failed and not last.ready
        assert words in last.message and last.message.startswith("Spawn failed: ")
        status = stack.spawner.status("ada")
        assert status.state == "failed"
        assert status.failure is not None and status.failure.reason == reason
        assert ("failed", "ada", reason) in stack.outcomes
        await until(lambda: gone(kube, "jupyter-ada"))
        assert stack.table.get("/user/ada/") is None


async def test_start_timeout_gives_up_and_deletes_the_pod(kube: Kube) -> None:
    # Runs, but never answers its readiness probe.
    settings = echo_settings(
        image="python:3",
        cmd=(sys.executable, "-c", "import time; time.sleep(60)"),
        readiness_path="api",
        start_timeout=1.5,
    )
    async with spawner_stack(kube, settings) as stack:
        await stack.spawner.start("ada")
        status = await stack.spawner.wait("ada", 10)
        assert status.state == "failed"
        assert status.failure is not None and status.failure.reason == "timeout"
        assert "did not become ready within 1.5 seconds" in status.failure.message
        await until(lambda: gone(kube, "jupyter-ada"))


async def test_unschedulable_wait_leaves_the_pod_to_the_start_timeout(kube: Kube) -> None:
    """For autoscaling clusters: no failure at the scheduler's first no, the timeout decides."""
    settings = echo_settings(
        resources=Resources(cpu_request="5000"), unschedulable="wait", start_timeout=2.0
    )
    async with spawner_stack(kube, settings) as stack:
        await stack.spawner.start("ada")
        await until(
            lambda: any("node with room" in e.message for e in stack.progress.events("ada"))
        )
        assert stack.spawner.status("ada").state == "starting"
        status = await stack.spawner.wait("ada", 15)
        assert status.failure is not None and status.failure.reason == "timeout"
        await until(lambda: gone(kube, "jupyter-ada"))


async def test_two_replicas_starting_one_user_make_one_pod(kube: Kube) -> None:
    settings = echo_settings()
    async with spawner_stack(kube, settings) as one, spawner_stack(kube, settings) as two:
        await asyncio.gather(one.spawner.start("ada"), two.spawner.start("ada"))
        for stack in (one, two):
            events = await stack.events_of("ada")
            assert events[-1].ready, [e.message for e in events]
            assert stack.spawner.status("ada").state == "running"
            assert stack.table.get("/user/ada/") is not None
        pods = (await kube.list("pods", NAMESPACE)).items
        assert [p["metadata"]["name"] for p in pods] == ["jupyter-ada"]
        messages = [e.message for s in (one, two) for e in s.progress.events("ada")]
        assert "Joining the server already starting" in messages


async def test_concurrent_spawn_limit_refuses_without_pile_up(
    kube: Kube, cluster: SimCluster | RealServer
) -> None:
    async with spawner_stack(kube, echo_settings(concurrent_spawn_limit=2)) as stack:
        pause_nodes(cluster, True)  # starts stay under way
        try:
            await stack.spawner.start("ada")
            await stack.spawner.start("bob")
            with pytest.raises(SpawnLimitReached) as refused:
                await stack.spawner.start("cat")
            assert refused.value.retry_after > 0
            assert "too many servers are starting" in str(refused.value)
            assert stack.spawner.status("cat").state == "stopped"
            assert ("limited", "cat", "") in stack.outcomes
            await stack.spawner.start("ada")  # joining one under way is not a new start
            pods = (await kube.list("pods", NAMESPACE)).items
            assert sorted(p["metadata"]["name"] for p in pods) == ["jupyter-ada", "jupyter-bob"]
        finally:
            pause_nodes(cluster, False)
        for user in ("ada", "bob"):
            assert (await stack.spawner.wait(user, 10)).state == "running"
        await stack.spawner.start("cat")  # room again
        assert (await stack.spawner.wait("cat", 10)).state == "running"


@pytest.mark.kubesim_only
async def test_api_error_on_create_fails_then_a_retry_succeeds(
    kube: Kube, cluster: SimCluster, set_faults: FaultSetter
) -> None:
    async with spawner_stack(kube, echo_settings()) as stack:
        await set_faults(cluster, {"errors": {"create": {"code": 500, "count": 1}}})
        with pytest.raises(SpawnFailed) as failed:
            await stack.spawner.start("ada")
        assert failed.value.reason == "api_error"
        assert "Kubernetes API could not create the server (500)" in failed.value.message
        status = stack.spawner.status("ada")
        assert status.state == "failed"
        assert status.failure is not None and status.failure.reason == "api_error"
        assert stack.progress.events("ada")[-1].failed
        assert (await kube.list("pods", NAMESPACE)).items == []

        await stack.spawner.start("ada")  # the fault was for one call only
        assert (await stack.spawner.wait("ada", 10)).state == "running"


@pytest.mark.kubesim_only
async def test_api_faults_while_running_never_delete_the_pod(
    kube: Kube, cluster: SimCluster, set_faults: FaultSetter
) -> None:
    async with spawner_stack(kube, echo_settings()) as stack:
        await stack.spawner.start("ada")
        assert (await stack.spawner.wait("ada", 10)).state == "running"
        uid = (await kube.get("pods", NAMESPACE, "jupyter-ada"))["metadata"]["uid"]
        await set_faults(cluster, {"errors": {"list": {"code": 500}, "watch": {"code": 500}}})
        try:
            await set_faults(cluster, {"drop_watches": True})
            await asyncio.sleep(0.5)
            assert stack.spawner.status("ada").state == "running"
            assert stack.table.get("/user/ada/") is not None
        finally:
            await set_faults(cluster, {"reset": True})
        assert (await kube.get("pods", NAMESPACE, "jupyter-ada"))["metadata"]["uid"] == uid
