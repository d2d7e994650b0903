"""Scheduling onto simulated nodes and pod addresses, observed over HTTP.

"Cluster full" as a spawner meets it: a pod whose requests do not fit stays
Pending with PodScheduled False/Unschedulable and a FailedScheduling Warning,
and is placed as soon as another pod's deletion frees capacity. Every pod
gets its own 127.x.y.z address on which its own process answers.
The quantity table at the end is the only unit test: a parsing helper.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client import ApiException

from kubesim.kubelet import NodeCapacity
from kubesim.kubelet.quantities import InvalidQuantity, cpu_millicores, memory_bytes

PY = sys.executable
MI = 2**20

# Answers every GET with the pod's name, on the pod's own address.
NAMED_SERVER = (
    "import http.server,os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers()\n"
    "        self.wfile.write(os.environ['POD_NAME'].encode())\n"
    "    def log_message(self, *a): pass\n"
    "http.server.HTTPServer((os.environ['POD_IP'], int(os.environ['PORT'])), H).serve_forever()\n"
)


def sleeper(cpu: str | None = None, memory: str | None = None, **extra: Any) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    return {
        "name": "main",
        "image": "x",
        "command": [PY, "-c", "import time; time.sleep(60)"],
        "resources": {"requests": requests},
        **extra,
    }


def named_server(port: int) -> dict[str, Any]:
    field = lambda path: {"fieldRef": {"fieldPath": path}}  # noqa: E731
    return {
        "name": "notebook",
        "image": "x",
        "command": [PY, "-c", NAMED_SERVER],
        "env": [
            {"name": "POD_IP", "valueFrom": field("status.podIP")},
            {"name": "POD_NAME", "valueFrom": field("metadata.name")},
            {"name": "PORT", "value": str(port)},
        ],
        "readinessProbe": {"tcpSocket": {"port": port}},
    }


def condition(pod: Any, kind: str) -> Any:
    return next((c for c in pod.status.conditions or [] if c.type == kind), None)


def is_ready(pod: Any) -> bool:
    ready = condition(pod, "Ready")
    return ready is not None and ready.status == "True"


def unschedulable(pod: Any) -> bool:
    scheduled = condition(pod, "PodScheduled")
    return scheduled is not None and scheduled.reason == "Unschedulable"


SMALL_NODE = NodeCapacity("small", cpu_millicores=1000, memory_bytes=512 * MI, pods=3)


@pytest.mark.parametrize(
    ("first", "second", "why"),
    [
        (sleeper(cpu="800m"), [sleeper(cpu="0.5")], "1 Insufficient cpu"),
        (sleeper(memory="400Mi"), [sleeper(memory="200Mi")], "1 Insufficient memory"),
        # A limit without a request counts as the request; containers add up.
        (
            sleeper(resources={"limits": {"cpu": "600m"}}),
            [sleeper(cpu="250m"), sleeper(cpu="250m") | {"name": "sidecar"}],
            "1 Insufficient cpu",
        ),
    ],
    ids=["cpu", "memory", "limits"],
)
async def test_pod_that_does_not_fit_waits_until_capacity_frees(
    make_sim: Any, first: dict[str, Any], second: list[dict[str, Any]], why: str
) -> None:
    sim = await make_sim(nodes=(SMALL_NODE,))
    await sim.create("first", first, terminationGracePeriodSeconds=0)
    await sim.until("first", is_ready)
    await sim.create("second", *second)
    pod = await sim.until("second", unschedulable)
    message = f"0/1 nodes are available: {why}."
    assert pod.status.phase == "Pending"
    assert pod.status.pod_ip is None and pod.spec.node_name is None
    scheduled = condition(pod, "PodScheduled")
    assert scheduled.status == "False" and scheduled.message == message
    assert [c.type for c in pod.status.conditions] == ["PodScheduled"]
    failed = await sim.until_event("second", lambda e: e.reason == "FailedScheduling")
    assert failed.type == "Warning" and failed.message == message
    assert failed.source.component == "default-scheduler" and failed.event_time is not None

    await sim.delete("first")
    pod = await sim.until("second", is_ready)
    assert pod.spec.node_name == "small"
    assert condition(pod, "PodScheduled").status == "True"
    assert "Scheduled" in await sim.reasons("second")


async def test_a_node_full_of_pods_and_node_selectors(make_sim: Any) -> None:
    nodes = (NodeCapacity("gpu", pods=1, labels={"gpu": "yes"}), NodeCapacity("plain", pods=5))
    sim = await make_sim(nodes=nodes)
    await sim.create("trainer", sleeper(), nodeSelector={"gpu": "yes"})
    assert (await sim.until("trainer", is_ready)).spec.node_name == "gpu"
    await sim.create("second-trainer", sleeper(), nodeSelector={"gpu": "yes"})
    pod = await sim.until("second-trainer", unschedulable)
    message = condition(pod, "PodScheduled").message
    assert message.startswith("0/2 nodes are available: ")
    assert "1 Too many pods" in message
    assert "1 node(s) didn't match Pod's node affinity/selector" in message
    await sim.create("pinned", sleeper(), nodeSelector={"kubernetes.io/hostname": "plain"})
    assert (await sim.until("pinned", is_ready)).spec.node_name == "plain"


async def test_each_pod_answers_on_its_own_address_reused_after_deletion(
    sim: Any, pod_port: int
) -> None:
    for name in ("ada", "grace"):
        await sim.create(name, named_server(pod_port), terminationGracePeriodSeconds=1)
    ada = await sim.until("ada", is_ready)
    grace = await sim.until("grace", is_ready)
    addresses = {ada.status.pod_ip, grace.status.pod_ip}
    assert len(addresses) == 2
    assert all(a.startswith("127.") and a not in ("127.0.0.1", "127.0.1.1") for a in addresses)
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for pod in (ada, grace):
            async with session.get(f"http://{pod.status.pod_ip}:{pod_port}/") as reply:
                assert await reply.text() == pod.metadata.name
        deleting = await sim.delete("ada")
        await sim.until_deleted("ada", deleting.metadata.resource_version)
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://{ada.status.pod_ip}:{pod_port}/")
        await sim.create("linus", named_server(pod_port))
        linus = await sim.until("linus", is_ready)
        assert linus.status.pod_ip == ada.status.pod_ip  # released addresses are reused
        async with session.get(f"http://{linus.status.pod_ip}:{pod_port}/") as reply:
            assert await reply.text() == "linus"


async def test_requests_that_are_not_quantities_are_refused(sim: Any) -> None:
    # As the real server: refused while decoding, a 400 before any validation.
    with pytest.raises(ApiException) as refused:
        await sim.create("greedy", sleeper(cpu="lots"))
    assert refused.value.status == 400
    status = json.loads(refused.value.body)
    assert status["reason"] == "BadRequest"
    assert status["message"].startswith('Pod in version "v1" cannot be handled as a Pod: ')
    assert "quantities must match the regular expression" in status["message"]
    await sim.create("modest", sleeper(cpu="100m"))
    await sim.until("modest", is_ready, within=5)


async def test_each_bad_resource_is_named_in_the_refusal(sim: Any) -> None:
    resources = {
        "requests": {"cpu": "-1", "memory": "2Gi"},
        "limits": {"memory": "1Gi", "nvidia.com/gpu": "-1"},
    }
    with pytest.raises(ApiException) as refused:
        await sim.create("greedy", sleeper(resources=resources))
    assert refused.value.status == 422
    status = json.loads(refused.value.body)
    assert status["reason"] == "Invalid"
    causes = {c["field"]: c["message"] for c in status["details"]["causes"]}
    where = "spec.containers[0].resources"
    # A request above its limit is reported on `requests`, as the real server does.
    assert set(causes) == {
        f"{where}.requests[cpu]",
        f"{where}.limits[nvidia.com/gpu]",
        f"{where}.requests",
    }
    assert "must be greater than or equal to 0" in causes[f"{where}.requests[cpu]"]
    assert "must be greater than or equal to 0" in causes[f"{where}.limits[nvidia.com/gpu]"]
    assert "must be less than or equal to memory limit of 1Gi" in causes[f"{where}.requests"]
    # Nothing was stored, and a PATCH cannot slip a bad quantity in either.
    assert (await sim.core.list_namespaced_pod("default")).items == []
    await sim.create("modest", sleeper(cpu="100m"))
    with pytest.raises(ApiException) as patched:
        await sim.core.patch_namespaced_pod(
            "modest", "default", [{"op": "replace", "path": "/spec/containers/0/resources",
                                   "value": {"requests": {"cpu": "1 core"}}}],
        )  # fmt: skip
    # After a patch the real server reports it on field `patch`.
    assert patched.value.status == 422
    assert json.loads(patched.value.body)["details"]["causes"][0]["field"] == "patch"


async def test_a_pod_the_scheduler_cannot_read_waits_and_the_others_run(sim: Any) -> None:
    # The API checks no schema, so a nodeSelector that is not a map is stored;
    # the kubelet must keep that one pod waiting, not stop scheduling.
    # (read as raw JSON: the client's models cannot hold such a pod either).
    body = {
        "metadata": {"name": "odd"},
        "spec": {"containers": [sleeper()], "nodeSelector": ["ssd"]},
    }
    created = await sim.core.create_namespaced_pod("default", body, _preload_content=False)
    assert created.status == 201
    created.release()
    failed = await sim.until_event("odd", lambda e: e.reason == "FailedScheduling")
    assert failed.type == "Warning" and "pod spec cannot be read" in failed.message
    reply = await sim.core.read_namespaced_pod("odd", "default", _preload_content=False)
    odd = await reply.json()
    reply.release()
    assert odd["status"]["phase"] == "Pending" and "podIP" not in odd["status"]
    scheduled = next(c for c in odd["status"]["conditions"] if c["type"] == "PodScheduled")
    assert scheduled["reason"] == "Unschedulable" and scheduled["message"] == failed.message
    for name in ("after-1", "after-2"):
        await sim.create(name, sleeper(cpu="100m"))
        await sim.until(name, is_ready, within=5)
    # The bad pod can still be deleted like any other; stopping the cluster
    # afterwards (fixture teardown) raises nothing.
    gone = await sim.core.delete_namespaced_pod("odd", "default", _preload_content=False)
    assert gone.status == 200
    gone.release()
    missing = await sim.core.read_namespaced_pod("odd", "default", _preload_content=False)
    assert missing.status == 404  # unscheduled: removed at once
    missing.release()


async def test_two_clusters_at_once_hand_out_disjoint_addresses(make_sim: Any) -> None:
    first, second = await make_sim(), await make_sim()
    addresses: list[set[str]] = []
    for cluster in (first, second):
        for i in range(3):
            await cluster.create(f"pod-{i}", sleeper())
        seen = set()
        for i in range(3):
            pod = await cluster.until(f"pod-{i}", lambda p: p.status.pod_ip)
            seen.add(pod.status.pod_ip)
        addresses.append(seen)
    assert len(addresses[0]) == len(addresses[1]) == 3
    assert not addresses[0] & addresses[1], addresses
    for address in addresses[0] | addresses[1]:
        octets = [int(part) for part in address.split(".")]
        assert octets[0] == 127 and 2 <= octets[1] <= 254 and octets[3] not in (0, 255)


async def test_pod_addresses_from_a_configured_range(make_sim: Any) -> None:
    sim = await make_sim(pod_network="127.77.3.0/24")
    for i in range(2):
        await sim.create(f"pod-{i}", sleeper())
    for i in range(2):
        pod = await sim.until(f"pod-{i}", lambda p: p.status.pod_ip)
        assert pod.status.pod_ip.startswith("127.77.3.")


@pytest.mark.parametrize(
    ("text", "millicores"),
    [("500m", 500), ("1", 1000), ("0.1", 100), ("2.5", 2500), (2, 2000), ("1500u", 2)],
)
def test_cpu_quantities(text: str | int, millicores: int) -> None:
    assert cpu_millicores(text) == millicores


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [("1Gi", 2**30), ("512Mi", 512 * MI), ("1k", 1000), ("1M", 10**6), ("128", 128)],
)
def test_memory_quantities(text: str, nbytes: int) -> None:
    assert memory_bytes(text) == nbytes


@pytest.mark.parametrize("bad", ["", "abc", "1Gb", "-1", "1..2"])
def test_invalid_quantities_are_refused(bad: str) -> None:
    with pytest.raises(InvalidQuantity):
        memory_bytes(bad)
