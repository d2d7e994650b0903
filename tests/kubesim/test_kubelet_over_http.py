"""The simulated kubelet seen through the real API over HTTP with kubernetes_asyncio.

What a spawner sees: pods created by the client turn Running and Ready on
their own address, the typed watch never chokes on what the kubelet writes,
Events arrive in lifecycle order, logs and metrics come from the real
process, and deletion ends in a DELETED event. Also the shared-process echo
mode, used for scale.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, config, watch

from kubesim.cluster import SimCluster
from kubesim.kubelet import KubeletConfig, SimKubelet
from kubesim.store import Store

PY = sys.executable
HTTP_SERVER = (
    "import http.server,sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'hi')\n"
    "    def log_message(self, *a): pass\n"
    "print('serving', flush=True)\n"
    "http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()\n"
)


@pytest.fixture
async def core(
    make_cluster: Callable[..., Awaitable[SimCluster]], tmp_path: Path
) -> AsyncIterator[client.CoreV1Api]:
    kubelet = SimKubelet(
        KubeletConfig(data_dir=tmp_path / "sim", backoff_initial=0.2, backoff_max=0.8)
    )
    cluster = await make_cluster(kubelet=kubelet)
    path = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    api = await config.new_client_from_config(config_file=str(path))
    yield client.CoreV1Api(api)
    await api.close()


def notebook_pod(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "nb"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "notebook",
                    "image": "jupyter/base-notebook:latest",
                    "command": [PY, "-c", HTTP_SERVER],
                    "args": ["$(POD_IP)", "8888"],
                    "env": [
                        {
                            "name": "POD_IP",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        }
                    ],
                    "ports": [{"containerPort": 8888}],
                    "readinessProbe": {"httpGet": {"port": 8888, "path": "/"}},
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                    **extra,
                }
            ],
        },
    }


def ready(pod: client.V1Pod) -> bool:
    conditions = pod.status.conditions if pod.status else None
    return any(c.type == "Ready" and c.status == "True" for c in conditions or [])


async def watch_until(
    core: client.CoreV1Api,
    check: Callable[[str, client.V1Pod], bool],
    within: float = 15,
    since: str | None = None,
) -> client.V1Pod:
    """Follow the typed pod watch (as a spawner does) until check(type, pod) holds.

    `since`: a resourceVersion to resume from, so a change that already
    happened (a fast deletion) is still seen.
    """
    deadline = time.monotonic() + within
    stream = watch.Watch()
    options: dict[str, Any] = {"resource_version": since} if since else {}
    try:
        while time.monotonic() < deadline:
            async with asyncio.timeout(deadline - time.monotonic()):
                async for event in stream.stream(
                    core.list_namespaced_pod, "default", timeout_seconds=5, **options
                ):
                    options = {"resource_version": event["object"].metadata.resource_version}
                    if check(event["type"], event["object"]):
                        return event["object"]
    finally:
        stream.stop()
    raise AssertionError("watch never showed the expected pod state")


async def test_spawned_pod_turns_ready_through_the_typed_watch(core: client.CoreV1Api) -> None:
    await core.create_namespaced_pod("default", notebook_pod("jupyter-ada"))
    pod = await watch_until(core, lambda _, p: p.metadata.name == "jupyter-ada" and ready(p))
    assert pod.status.phase == "Running"
    ip = pod.status.pod_ip
    assert ip.startswith("127.") and pod.status.pod_ips[0].ip == ip
    (container,) = pod.status.container_statuses
    assert container.ready and container.started and container.restart_count == 0
    assert container.state.running.started_at is not None
    assert pod.status.qos_class == "Burstable"
    async with aiohttp.ClientSession() as session, session.get(f"http://{ip}:8888/") as reply:
        assert await reply.text() == "hi"

    events = await core.list_namespaced_event(
        "default", field_selector="involvedObject.name=jupyter-ada,involvedObject.kind=Pod"
    )
    reasons = [e.reason for e in events.items]
    assert reasons[:5] == ["Scheduled", "Pulling", "Pulled", "Created", "Started"]

    log = await core.read_namespaced_pod_log("jupyter-ada", "default")
    assert "serving" in log

    metrics = await core.api_client.call_api(
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/jupyter-ada",
        "GET",
        response_types_map={200: "object"},
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )
    usage = metrics["containers"][0]["usage"]
    assert usage["cpu"].endswith("m")
    assert int(usage["memory"].removesuffix("Ki")) > 1000  # a real Python process

    deleting = await core.delete_namespaced_pod("jupyter-ada", "default")
    await watch_until(
        core,
        lambda kind, p: kind == "DELETED" and p.metadata.name == "jupyter-ada",
        since=deleting.metadata.resource_version,
    )
    reasons = [
        e.reason
        for e in (
            await core.list_namespaced_event(
                "default", field_selector="involvedObject.name=jupyter-ada"
            )
        ).items
    ]
    assert "Killing" in reasons
    # The address no longer answers once the pod is gone.
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(f"http://{ip}:8888/", timeout=aiohttp.ClientTimeout(total=2))


async def test_crash_loop_is_visible_to_the_typed_client(core: client.CoreV1Api) -> None:
    body = notebook_pod("jupyter-crash", command=[PY, "-c", "raise SystemExit(2)"], args=[])
    del body["spec"]["containers"][0]["readinessProbe"]
    await core.create_namespaced_pod("default", body)

    def crash_looping(_: str, pod: client.V1Pod) -> bool:
        statuses = pod.status.container_statuses if pod.status else None
        waiting = statuses[0].state.waiting if statuses else None
        return waiting is not None and waiting.reason == "CrashLoopBackOff"

    pod = await watch_until(core, crash_looping)
    container = pod.status.container_statuses[0]
    assert container.last_state.terminated.exit_code == 2
    assert container.last_state.terminated.reason == "Error"
    assert container.restart_count >= 1


async def test_echo_pods_share_one_process_each_on_its_own_address(
    core: client.CoreV1Api,
) -> None:
    for name, token in (("echo-a", "secret-a"), ("echo-b", "secret-b")):
        body = {
            "metadata": {"name": name},
            "spec": {
                "containers": [
                    {
                        "name": "notebook",
                        "image": "kubesim/echo:latest",
                        "env": [{"name": "JUPYTERHUB_API_TOKEN", "value": token}],
                        "ports": [{"containerPort": 8888}],
                    }
                ]
            },
        }
        await core.create_namespaced_pod("default", body)
    names = {"echo-a", "echo-b"}
    seen: dict[str, client.V1Pod] = {}

    def both_ready(_: str, pod: client.V1Pod) -> bool:
        if pod.metadata.name in names and ready(pod):
            seen[pod.metadata.name] = pod
        return len(seen) == 2

    await watch_until(core, both_ready)
    a, b = seen["echo-a"].status.pod_ip, seen["echo-b"].status.pod_ip
    assert a != b
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{a}:8888/user/ada/api") as reply:
            assert reply.status == 403
        async with session.get(f"http://{a}:8888/user/ada/api", headers=auth("secret-b")) as reply:
            assert reply.status == 403  # the other pod's token
        async with session.post(
            f"http://{a}:8888/user/ada/api?x=1", headers=auth("secret-a"), data=b"ping"
        ) as reply:
            assert reply.status == 200
            echoed = await reply.json()
        assert echoed["pod"] == "echo-a" and echoed["path"] == "/user/ada/api"
        assert echoed["method"] == "POST" and echoed["body"] == "ping"
        assert echoed["query"] == "x=1"
        async with session.ws_connect(f"ws://{b}:8888/ws?token=secret-b") as ws:
            await ws.send_str("hello")
            assert (await ws.receive(timeout=5)).data == "hello"
            await ws.send_bytes(b"\x00\x01")
            assert (await ws.receive(timeout=5)).data == b"\x00\x01"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


async def test_a_thousand_echo_pods_start_quickly(tmp_path: Path) -> None:
    # Straight at the kubelet's seam: this measures the kubelet, not HTTP.
    store = Store()
    kubelet = SimKubelet(KubeletConfig(data_dir=tmp_path / "sim"))
    await kubelet.start(store)
    try:
        ready_pods: set[str] = set()
        all_ready = asyncio.Event()

        def note(_: str, pod: dict[str, Any]) -> None:
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if cond["type"] == "Ready" and cond["status"] == "True":
                    ready_pods.add(pod["metadata"]["name"])
            if len(ready_pods) == 1000:
                all_ready.set()

        store.subscribe("pods", note)
        started = time.monotonic()
        container = {"name": "nb", "image": "kubesim/echo", "ports": [{"containerPort": 8888}]}
        for i in range(1000):
            store.create(
                "pods",
                "default",
                {"metadata": {"name": f"p{i}"}, "spec": {"containers": [container]}},
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_ready.wait(), 20)
        took = time.monotonic() - started
        assert len(ready_pods) == 1000
        assert took < 10, f"1,000 echo pods took {took:.1f}s"
        ips = {store.get("pods", "default", f"p{i}")["status"]["podIP"] for i in range(1000)}  # type: ignore[index]
        assert len(ips) == 1000
        async with aiohttp.ClientSession() as session:
            for ip in list(ips)[:20]:
                async with session.get(f"http://{ip}:8888/") as reply:
                    assert reply.status == 200
    finally:
        await kubelet.stop()


STUBBORN = (
    "import os,signal,time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('pid', os.getpid(), flush=True)\n"
    "time.sleep(60)\n"
)


async def start_stubborn(core: client.CoreV1Api, name: str) -> int:
    body = {
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 30,
            "containers": [{"name": "main", "image": "x", "command": [PY, "-c", STUBBORN]}],
        },
    }
    await core.create_namespaced_pod("default", body)
    await watch_until(core, lambda _, p: p.metadata.name == name and ready(p))
    for _ in range(100):
        log = await core.read_namespaced_pod_log(name, "default")
        if "pid" in log:
            return int(log.split()[1])
        await asyncio.sleep(0.05)
    raise AssertionError("the container never printed its pid")


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_second_delete_with_a_shorter_grace_period_kills_sooner(
    core: client.CoreV1Api,
) -> None:
    pid = await start_stubborn(core, "slow-to-die")
    await core.delete_namespaced_pod("slow-to-die", "default")  # 30 s: it ignores SIGTERM
    await asyncio.sleep(0.3)
    assert running(pid)
    terminating = await core.read_namespaced_pod("slow-to-die", "default")
    assert terminating.metadata.deletion_timestamp is not None
    started = time.monotonic()
    shorter = await core.delete_namespaced_pod("slow-to-die", "default", grace_period_seconds=1)
    await watch_until(
        core,
        lambda kind, p: kind == "DELETED" and p.metadata.name == "slow-to-die",
        since=shorter.metadata.resource_version,
    )
    assert time.monotonic() - started < 5
    assert not running(pid)


async def test_force_delete_kills_at_once(core: client.CoreV1Api) -> None:
    pid = await start_stubborn(core, "forced")
    await core.delete_namespaced_pod("forced", "default", grace_period_seconds=0)
    for _ in range(100):
        if not running(pid):
            break
        await asyncio.sleep(0.05)
    assert not running(pid)
    with pytest.raises(client.ApiException) as gone:
        await core.read_namespaced_pod("forced", "default")
    assert gone.value.status == 404
