"""Watch streams through kubernetes_asyncio and raw HTTP: replay, resume, bookmarks, 410."""

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


def pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "nb", "image": "python:3.11"}]},
    }


async def collect(stream: Any, count: int, seconds: float = 5.0) -> list[tuple[str, str]]:
    """The first `count` (type, name) events, or fail after `seconds`."""
    seen: list[tuple[str, str]] = []

    async def take() -> None:
        async for event in stream:
            seen.append((event["type"], event["raw_object"]["metadata"].get("name", "")))
            if len(seen) >= count:
                return

    await asyncio.wait_for(take(), seconds)
    return seen


async def raw_watch(
    cluster: SimCluster, query: str, seconds: float = 5.0, stop_after: int = 0
) -> list[dict[str, Any]]:
    """The lines of one watch response until the server ends it (or `stop_after` lines)."""
    headers = {"Authorization": f"Bearer {cluster.token}"}
    url = f"{cluster.url}/api/v1/namespaces/default/pods?{query}"
    lines: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(headers=headers) as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/json")
        async with asyncio.timeout(seconds):
            async for line in response.content:
                lines.append(json.loads(line))
                if len(lines) == stop_after:
                    break
    return lines


async def test_watch_replays_current_state_then_streams_changes(core_api: Any) -> None:
    await core_api.create_namespaced_pod("default", pod("alice"))
    w = watch.Watch()
    stream = w.stream(core_api.list_namespaced_pod, "default", timeout_seconds=5)

    async def change_later() -> None:
        await asyncio.sleep(0.2)
        await core_api.patch_namespaced_pod(
            "alice", "default", {"metadata": {"labels": {"a": "b"}}}
        )
        await core_api.create_namespaced_pod("default", pod("bob"))
        await core_api.delete_namespaced_pod("bob", "default")

    changer = asyncio.create_task(change_later())
    try:
        events = await collect(stream, 5)
    finally:
        await changer
        await w.close()
    # bob, never scheduled, goes at once: marked deleting (MODIFIED), then DELETED, as
    # the real server does.
    assert events == [
        ("ADDED", "alice"), ("MODIFIED", "alice"), ("ADDED", "bob"), ("MODIFIED", "bob"),
        ("DELETED", "bob"),
    ]  # fmt: skip


async def test_watch_resumes_from_a_resource_version(core_api: Any) -> None:
    await core_api.create_namespaced_pod("default", pod("old"))
    listed = await core_api.list_namespaced_pod("default")
    await core_api.create_namespaced_pod("default", pod("new"))
    await core_api.delete_namespaced_pod("old", "default")
    w = watch.Watch()
    stream = w.stream(
        core_api.list_namespaced_pod, "default",
        resource_version=listed.metadata.resource_version, timeout_seconds=5,
    )  # fmt: skip
    try:
        events = await collect(stream, 3)
    finally:
        await w.close()
    # Only what happened after the list; DELETED carries the final object (marked
    # deleting first, as the real server marks a pod that goes at once).
    assert events == [("ADDED", "new"), ("MODIFIED", "old"), ("DELETED", "old")]


async def test_objects_entering_and_leaving_a_selector(core_api: Any) -> None:
    await core_api.create_namespaced_pod("default", pod("carol"))
    listed = await core_api.list_namespaced_pod("default", label_selector="app=nb")
    assert listed.items == []
    label = {"metadata": {"labels": {"app": "nb"}}}
    await core_api.patch_namespaced_pod("carol", "default", label)
    await core_api.patch_namespaced_pod("carol", "default", {"metadata": {"labels": {"x": "1"}}})
    unlabel = {"metadata": {"labels": {"app": None}}}
    await core_api.patch_namespaced_pod("carol", "default", unlabel)
    w = watch.Watch()
    stream = w.stream(
        core_api.list_namespaced_pod, "default", label_selector="app=nb",
        resource_version=listed.metadata.resource_version, timeout_seconds=5,
    )  # fmt: skip
    try:
        events = await collect(stream, 3)
    finally:
        await w.close()
    assert events == [("ADDED", "carol"), ("MODIFIED", "carol"), ("DELETED", "carol")]


async def test_bookmarks_and_timeout(make_cluster: Any) -> None:
    cluster = await make_cluster(kubelet=None, bookmark_interval=0.2)
    started = time.monotonic()
    lines = await raw_watch(cluster, "watch=true&allowWatchBookmarks=true&timeoutSeconds=1")
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3
    bookmarks = [line for line in lines if line["type"] == "BOOKMARK"]
    assert bookmarks, lines
    assert bookmarks[0]["object"]["metadata"].keys() == {"resourceVersion"}
    assert bookmarks[0]["object"]["kind"] == "Pod"
    # Without allowWatchBookmarks there are none.
    assert await raw_watch(cluster, "watch=1&timeoutSeconds=1") == []


async def test_watch_flag_spellings(api_cluster: SimCluster, core_api: Any) -> None:
    await core_api.create_namespaced_pod("default", pod("dave"))
    for spelling in ("true", "True", "1"):
        lines = await raw_watch(api_cluster, f"watch={spelling}", stop_after=1)
        assert [(line["type"], line["object"]["metadata"]["name"]) for line in lines] == [
            ("ADDED", "dave")
        ]
        assert lines[0]["object"]["kind"] == "Pod"


async def test_too_old_resource_version_is_an_expired_error_event(
    make_cluster: Any, tmp_path: Path
) -> None:
    cluster = await make_cluster(kubelet=None, history_size=3)
    cluster.write_kubeconfig(tmp_path / "kc")
    async with await config.new_client_from_config(config_file=str(tmp_path / "kc")) as api:
        core = client.CoreV1Api(api)
        first = await core.create_namespaced_pod("default", pod("p0"))
        for i in range(1, 10):
            await core.create_namespaced_pod("default", pod(f"p{i}"))
        old = first.metadata.resource_version
        lines = await raw_watch(cluster, f"watch=true&resourceVersion={old}&timeoutSeconds=5")
        assert len(lines) == 1 and lines[0]["type"] == "ERROR"
        status = lines[0]["object"]
        assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
        assert status["message"].startswith(f"too old resource version: {old} (")
        w = watch.Watch()
        stream = w.stream(
            core.list_namespaced_pod, "default", resource_version=old, timeout_seconds=5
        )
        with pytest.raises(ApiException) as e:
            await collect(stream, 1)
        await w.close()
        assert e.value.status == 410


async def test_event_watch_with_field_selector(core_api: Any) -> None:
    def event(name: str, pod_name: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": "default"},
            "reason": "Started",
            "message": "Started container nb",
        }

    w = watch.Watch()
    stream = w.stream(
        core_api.list_namespaced_event, "default",
        field_selector="involvedObject.name=alice,involvedObject.kind=Pod", timeout_seconds=5,
    )  # fmt: skip

    async def emit() -> None:
        await asyncio.sleep(0.2)
        await core_api.create_namespaced_event("default", event("bob.1", "bob"))
        await core_api.create_namespaced_event("default", event("alice.1", "alice"))

    emitter = asyncio.create_task(emit())
    try:
        events = await collect(stream, 1)
    finally:
        await emitter
        await w.close()
    assert events == [("ADDED", "alice.1")]


async def test_bad_resource_version_is_400(api_cluster: SimCluster) -> None:
    headers = {"Authorization": f"Bearer {api_cluster.token}"}
    url = f"{api_cluster.url}/api/v1/namespaces/default/pods?watch=1&resourceVersion=abc"
    async with aiohttp.ClientSession(headers=headers) as http, http.get(url) as response:
        assert response.status == 400
        assert (await response.json())["reason"] == "BadRequest"
