"""Bearer-token auth (401/403) and fault injection driven over /kubesim/faults."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from kubesim.cluster import SimCluster

POD = {
    "metadata": {"name": "alice"},
    "spec": {"containers": [{"name": "nb", "image": "python:3.11"}]},
}


async def set_faults(cluster: SimCluster, settings: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {cluster.token}"}
    url = f"{cluster.url}/kubesim/faults"
    async with aiohttp.ClientSession(headers=headers) as http, http.put(url, json=settings) as r:
        body: dict[str, Any] = await r.json()
        assert r.status == 200, body
        return body


async def test_missing_or_wrong_token_is_401(api_cluster: SimCluster) -> None:
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
            async with http.get(f"{api_cluster.url}/api/v1/pods", headers=headers) as r:
                assert r.status == 401
                body = await r.json()
                assert (body["reason"], body["code"]) == ("Unauthorized", 401)
        # /version is public, as on a real cluster.
        async with http.get(f"{api_cluster.url}/version") as r:
            assert r.status == 200
            assert (await r.json())["major"] == "1"


async def test_read_only_identity_is_forbidden_to_write(
    api_cluster: SimCluster, tmp_path: Path
) -> None:
    api_cluster.write_kubeconfig(tmp_path / "viewer", read_only=True)
    async with await config.new_client_from_config(config_file=str(tmp_path / "viewer")) as api:
        core = client.CoreV1Api(api)
        assert (await core.list_namespaced_pod("default")).items == []
        with pytest.raises(ApiException) as e:
            await core.create_namespaced_pod("default", POD)
        assert e.value.status == 403
        body = json.loads(e.value.body)
        assert body["reason"] == "Forbidden"
        assert 'cannot create resource "pods"' in body["message"]


async def test_fault_settings_round_trip_and_validation(api_cluster: SimCluster) -> None:
    shown = await set_faults(api_cluster, {"latency_ms": 5})
    assert shown["latency_ms"] == 5 and shown["errors"] == {}
    headers = {"Authorization": f"Bearer {api_cluster.token}"}
    url = f"{api_cluster.url}/kubesim/faults"
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(url) as r:
            assert (await r.json())["latency_ms"] == 5
        for bad in ({"errors": {"fly": {"code": 500}}}, {"errors": {"get": {"code": 200}}},
                    {"latency_ms": -1}, {"surprise": 1}, [1]):  # fmt: skip
            async with http.put(url, json=bad) as r:
                assert r.status == 400, bad
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        assert r.status == 401


async def test_injected_errors_per_verb(api_cluster: SimCluster, core_api: Any) -> None:
    await set_faults(
        api_cluster, {"errors": {"create": {"code": 429, "count": 1, "retry_after": 2}}}
    )
    with pytest.raises(ApiException) as e:
        await core_api.create_namespaced_pod("default", POD)
    assert e.value.status == 429
    assert e.value.headers["Retry-After"] == "2"
    assert json.loads(e.value.body)["reason"] == "TooManyRequests"
    await core_api.create_namespaced_pod("default", POD)  # count was 1: next one passes
    await set_faults(api_cluster, {"errors": {"list": {"code": 500}, "get": {"code": 409}}})
    with pytest.raises(ApiException) as e:
        await core_api.list_namespaced_pod("default")
    assert e.value.status == 500
    with pytest.raises(ApiException) as e:
        await core_api.read_namespaced_pod("alice", "default")
    assert e.value.status == 409
    await set_faults(api_cluster, {"reset": True})
    assert (await core_api.read_namespaced_pod("alice", "default")).metadata.name == "alice"


async def test_added_latency(api_cluster: SimCluster, core_api: Any) -> None:
    await set_faults(api_cluster, {"latency_ms": 300})
    started = time.monotonic()
    await core_api.list_namespaced_pod("default")
    assert time.monotonic() - started >= 0.3
    await set_faults(api_cluster, {"latency_ms": 0})
    started = time.monotonic()
    await core_api.list_namespaced_pod("default")
    assert time.monotonic() - started < 0.3


async def test_drop_all_watches(api_cluster: SimCluster, core_api: Any) -> None:
    w = watch.Watch()
    stream = w.stream(core_api.list_namespaced_pod, "default", timeout_seconds=30)
    ended = asyncio.Event()

    async def consume() -> None:
        async for _ in stream:
            pass
        ended.set()  # the server closed the stream

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    await set_faults(api_cluster, {"drop_watches": True})
    try:
        await asyncio.wait_for(ended.wait(), 3)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await w.close()


async def test_expire_next_watch_resume(api_cluster: SimCluster, core_api: Any) -> None:
    listed = await core_api.list_namespaced_pod("default")
    await set_faults(api_cluster, {"expire_next_watch": True})
    w = watch.Watch()
    stream = w.stream(
        core_api.list_namespaced_pod, "default",
        resource_version=listed.metadata.resource_version, timeout_seconds=2,
    )  # fmt: skip
    with pytest.raises(ApiException) as e:
        async with asyncio.timeout(3):
            async for _ in stream:
                pass
    await w.close()
    assert e.value.status == 410
    # Only the next one: a resume now works again.
    w = watch.Watch()
    stream = w.stream(
        core_api.list_namespaced_pod, "default",
        resource_version=listed.metadata.resource_version, timeout_seconds=1,
    )  # fmt: skip
    async with asyncio.timeout(3):
        assert [e async for e in stream] == []
    await w.close()


async def test_paused_kubelet_makes_no_progress(make_cluster: Any, tmp_path: Path) -> None:
    cluster = await make_cluster()  # with the simulated kubelet
    shown = await set_faults(cluster, {"kubelet_paused": True})
    assert shown["kubelet_paused"] is True
    cluster.write_kubeconfig(tmp_path / "kc")
    async with await config.new_client_from_config(str(tmp_path / "kc")) as api:
        core = client.CoreV1Api(api)
        sleeper = {"name": "nb", "image": "python", "command": ["sleep", "30"]}
        await core.create_namespaced_pod(
            "default", {"metadata": {"name": "frozen"}, "spec": {"containers": [sleeper]}}
        )
        await asyncio.sleep(0.5)
        still = await core.read_namespaced_pod("frozen", "default")
        assert still.status.phase == "Pending" and not still.status.pod_ip
        await set_faults(cluster, {"kubelet_paused": False})
        phase = ""
        for _ in range(100):  # up to ~10 s
            phase = (await core.read_namespaced_pod("frozen", "default")).status.phase
            if phase == "Running":
                break
            await asyncio.sleep(0.1)
        assert phase == "Running"
