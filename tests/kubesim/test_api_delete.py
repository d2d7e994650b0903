"""Pod deletion as clients see it: deletionTimestamp, grace periods, immediate removal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException


def pod(name: str, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "nb", "image": "python:3.11"}]}
    if node:
        spec["nodeName"] = node  # as if the scheduler had placed it
    return {"metadata": {"name": name}, "spec": spec}


async def test_unscheduled_pod_is_removed_at_once(core_api: Any) -> None:
    await core_api.create_namespaced_pod("default", pod("pending"))
    answer = await core_api.delete_namespaced_pod("pending", "default")
    assert answer.metadata.name == "pending"
    with pytest.raises(ApiException) as e:
        await core_api.read_namespaced_pod("pending", "default")
    assert e.value.status == 404


async def test_placed_pod_terminates_gracefully(core_api: Any) -> None:
    await core_api.create_namespaced_pod("default", pod("alice", node="kubesim-node"))
    answer = await core_api.delete_namespaced_pod("alice", "default")
    # No kubelet here: the pod stays terminating, as on a real node that is down.
    assert answer.metadata.deletion_timestamp is not None
    assert answer.metadata.deletion_grace_period_seconds == 30
    still = await core_api.read_namespaced_pod("alice", "default")
    assert still.metadata.deletion_timestamp is not None
    # A second delete with a shorter grace period (here 0: force) finishes it.
    await core_api.delete_namespaced_pod("alice", "default", grace_period_seconds=0)
    with pytest.raises(ApiException) as e:
        await core_api.read_namespaced_pod("alice", "default")
    assert e.value.status == 404


async def test_grace_period_from_delete_options_body(core_api: Any) -> None:
    await core_api.create_namespaced_pod("default", pod("bob", node="kubesim-node"))
    options = client.V1DeleteOptions(grace_period_seconds=5, propagation_policy="Background")
    answer = await core_api.delete_namespaced_pod("bob", "default", body=options)
    assert answer.metadata.deletion_grace_period_seconds == 5
    # A longer grace period does not extend a running deletion.
    again = await core_api.delete_namespaced_pod("bob", "default", grace_period_seconds=60)
    assert again.metadata.deletion_grace_period_seconds == 5


async def test_watch_sees_terminating_then_deleted(core_api: Any) -> None:
    created = await core_api.create_namespaced_pod("default", pod("carol", node="kubesim-node"))
    w = watch.Watch()
    stream = w.stream(
        core_api.list_namespaced_pod, "default",
        resource_version=created.metadata.resource_version, timeout_seconds=5,
    )  # fmt: skip
    await core_api.delete_namespaced_pod("carol", "default", grace_period_seconds=10)
    await core_api.delete_namespaced_pod("carol", "default", grace_period_seconds=0)
    events: list[Any] = []
    async with asyncio.timeout(5):
        async for event in stream:
            events.append(event)
            if len(events) == 3:
                break
    await w.close()
    # As the real server: grace shortened to 0 (MODIFIED), then removed.
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED", "DELETED"]
    assert events[0]["object"].metadata.deletion_grace_period_seconds == 10
    assert events[1]["object"].metadata.deletion_grace_period_seconds == 0
    assert events[2]["object"].metadata.name == "carol"
    assert events[2]["object"].metadata.deletion_grace_period_seconds == 0


async def test_delete_preconditions_and_missing_objects(core_api: Any) -> None:
    await core_api.create_namespaced_pod("default", pod("dave"))
    wrong_uid = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-it"))
    with pytest.raises(ApiException) as e:
        await core_api.delete_namespaced_pod("dave", "default", body=wrong_uid)
    assert e.value.status == 409
    await core_api.delete_namespaced_pod("dave", "default")
    with pytest.raises(ApiException) as e:
        await core_api.delete_namespaced_pod("dave", "default")
    assert e.value.status == 404
