"""PodRoutes: a ready pod is routed, anything else is not, other routes are left alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from control.informer import Informer
from control.kube import Kube, Object
from control.manifests import POD_SELECTOR, pod_manifest
from control.route_sync import PodRoutes
from control.settings import SpawnerSettings
from routes import RouteSource, RouteTable

NAMESPACE = "podgate"
SETTINGS = SpawnerSettings(
    namespace=NAMESPACE, image="kubesim/echo", jupyter_args=False, readiness_path=None
)


def ready_pod(user: str, ip: str = "10.0.0.7", **status: Any) -> Object:
    pod = pod_manifest(user, SETTINGS, None, f"token-{user}")
    pod["status"] = {
        "phase": "Running",
        "podIP": ip,
        "conditions": [{"type": "Ready", "status": "True"}],
        **status,
    }
    return pod


def unready(pod: Object) -> Object:
    return {
        **pod,
        "status": {**pod["status"], "conditions": [{"type": "Ready", "status": "False"}]},
    }


def deleting(pod: Object) -> Object:
    return {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "2024-01-01T00:00:00Z"}}


def test_ready_pod_is_routed_with_its_user_and_token() -> None:
    table = RouteTable()
    sync = PodRoutes(table, 8888)
    sync("ADDED", ready_pod("ada@x.org"), None)
    route = table.get("/user/ada@x.org/")
    assert route is not None
    assert route.target.url == "http://10.0.0.7:8888"
    assert route.source is RouteSource.PODS
    assert route.user == "ada@x.org"
    assert route.data == {"token": "token-ada@x.org", "pod": "jupyter-ada-40x-2eorg"}


@pytest.mark.parametrize("change", [unready, deleting])
def test_a_pod_that_stops_serving_loses_its_route(change: Callable[[Object], Object]) -> None:
    table = RouteTable()
    sync = PodRoutes(table, 8888)
    pod = ready_pod("ada")
    sync("ADDED", pod, None)
    sync("MODIFIED", change(pod), pod)
    assert table.get("/user/ada/") is None


def test_deleted_pod_loses_its_route_and_unready_pods_get_none() -> None:
    table = RouteTable()
    sync = PodRoutes(table, 8888)
    sync("ADDED", unready(ready_pod("bob")), None)
    assert len(table) == 0
    pod = ready_pod("ada")
    sync("ADDED", pod, None)
    sync("DELETED", pod, pod)
    assert len(table) == 0


def test_unchanged_pod_keeps_the_route_and_its_activity() -> None:
    table = RouteTable()
    sync = PodRoutes(table, 8888)
    pod = ready_pod("ada")
    sync("ADDED", pod, None)
    route = table.get("/user/ada/")
    assert route is not None
    route.last_activity = 123.0
    sync("MODIFIED", pod, pod)
    assert table.get("/user/ada/") is route and route.last_activity == 123.0
    moved = ready_pod("ada", ip="10.0.0.8")
    sync("MODIFIED", moved, pod)
    new = table.get("/user/ada/")
    assert new is not None and new.target.url == "http://10.0.0.8:8888"


def test_routes_of_other_sources_are_never_touched() -> None:
    table = RouteTable()
    table.add("/user/ada", "http://127.0.0.1:9", source=RouteSource.API)
    table.add("/", "http://127.0.0.1:8081", source=RouteSource.CONFIG)
    sync = PodRoutes(table, 8888)
    pod = ready_pod("ada")
    sync("ADDED", pod, None)
    sync("DELETED", pod, pod)
    api = table.get("/user/ada")
    assert api is not None and api.source is RouteSource.API
    assert api.target.url == "http://127.0.0.1:9"
    assert len(table) == 2


def test_pods_without_a_user_are_ignored() -> None:
    table = RouteTable()
    pod = ready_pod("ada")
    del pod["metadata"]["annotations"]
    PodRoutes(table, 8888)("ADDED", pod, None)
    assert len(table) == 0


# --- with kubesim and the real informer ---------------------------------------------


@pytest.fixture
async def routed(kube: Kube) -> AsyncIterator[RouteTable]:
    table = RouteTable()
    informer = Informer(kube, "pods", NAMESPACE, label_selector=POD_SELECTOR)
    informer.add_listener(PodRoutes(table, 8888))
    await informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 5)
        yield table
    finally:
        await informer.stop()


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_kubesim_echo_pod_is_routed_while_it_runs(kube: Kube, routed: RouteTable) -> None:
    await kube.create("pods", NAMESPACE, pod_manifest("ada", SETTINGS, None, "tok"))
    await until(lambda: routed.get("/user/ada/") is not None)
    route = routed.get("/user/ada/")
    assert route is not None and route.user == "ada" and route.data["token"] == "tok"
    url = route.target.url + "/user/ada/api"
    async with aiohttp.ClientSession() as session:
        # The pod really serves at the routed address, to the routed token only.
        async with session.get(url, headers={"Authorization": "token tok"}) as reply:
            assert reply.status == 200
        async with session.get(url) as reply:
            assert reply.status == 403

    await kube.delete("pods", NAMESPACE, "jupyter-ada", grace_seconds=0)
    await until(lambda: routed.get("/user/ada/") is None)
