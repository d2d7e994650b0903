"""KubeApi against kubesim over HTTP: CRUD, paging, watch, and every failure as a KubeError."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from control.errors import (
    AlreadyExists,
    Conflict,
    Expired,
    Forbidden,
    Invalid,
    KubeError,
    KubeThrottled,
    KubeUnavailable,
    NotFound,
)
from control.k8s import KubeApi, connect_kube, ensure_namespace
from control.kube import WatchEvent
from kubesim.cluster import SimCluster

NS = "podgate"
Calls = list[tuple[str, str, int, float]]
Connect = Callable[..., Awaitable[KubeApi]]
FaultSetter = Callable[[SimCluster, dict[str, Any]], Awaitable[dict[str, Any]]]


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "notebook", "image": "kubesim/echo"}]},
    }


def claim(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


@pytest.fixture
async def api_cluster(make_cluster: Callable[..., Awaitable[SimCluster]]) -> SimCluster:
    """An API server alone: pods stay exactly as written."""
    return await make_cluster(kubelet=None)


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """connect_kube with any options; every KubeApi closed after the test."""
    opened: list[KubeApi] = []

    async def factory(**options: Any) -> KubeApi:
        api = await connect_kube(**options)
        opened.append(api)
        return api

    yield factory
    for api in opened:
        await api.close()


@pytest.fixture
def calls() -> Calls:
    return []


@pytest.fixture
async def api(api_cluster: SimCluster, connect: Connect, calls: Calls) -> KubeApi:
    return await connect(
        kubeconfig=api_cluster.kubeconfig(NS),
        request_timeout=2.0,
        observer=lambda *c: calls.append(c),
    )


async def collect(api: KubeApi, version: str, until: int, **options: Any) -> list[WatchEvent]:
    """Watch events (bookmarks left out) until `until` arrived; bounded by a timeout."""
    seen: list[WatchEvent] = []
    async with asyncio.timeout(5):
        async for event in api.watch("pods", NS, resource_version=version, **options):
            if event.type != "BOOKMARK":
                seen.append(event)
            if len(seen) >= until:
                break
    return seen


# -- plain dicts in and out ------------------------------------------------------------


async def test_pod_crud_with_plain_dicts(api: KubeApi, calls: Calls) -> None:
    created = await api.create("pods", NS, pod("jupyter-ada", app="podgate"))
    assert isinstance(created, dict)
    assert created["metadata"]["uid"] and created["status"]["phase"] == "Pending"
    fetched = await api.get("pods", NS, "jupyter-ada")
    assert fetched["metadata"]["labels"] == {"app": "podgate"}
    assert "deletionTimestamp" not in fetched["metadata"]  # unset fields stay absent

    await api.delete("pods", NS, "jupyter-ada")
    with pytest.raises(NotFound):
        await api.get("pods", NS, "jupyter-ada")
    assert [(verb, resource, code) for verb, resource, code, _ in calls] == [
        ("create", "pods", 201),
        ("get", "pods", 200),
        ("delete", "pods", 200),
        ("get", "pods", 404),
    ]
    assert all(0 <= seconds < 2 for *_, seconds in calls)


async def test_claims_are_created_listed_and_deleted(api: KubeApi) -> None:
    created = await api.create("persistentvolumeclaims", NS, claim("claim-ada"))
    assert created["metadata"]["name"] == "claim-ada"
    listed = await api.list("persistentvolumeclaims", NS)
    assert [c["metadata"]["name"] for c in listed.items] == ["claim-ada"]
    assert listed.resource_version
    await api.delete("persistentvolumeclaims", NS, "claim-ada")
    with pytest.raises(NotFound):
        await api.delete("persistentvolumeclaims", NS, "claim-ada")


async def test_list_follows_continue_pages(api: KubeApi, calls: Calls) -> None:
    gate = asyncio.Semaphore(32)

    async def make(index: int) -> None:
        async with gate:
            body = {"metadata": {"name": f"cm-{index:04d}", "labels": {"batch": "a"}}}
            await api.create("configmaps", NS, body)

    await asyncio.gather(*(make(i) for i in range(1100)))
    calls.clear()
    listed = await api.list("configmaps", NS, label_selector="batch=a")
    names = [c["metadata"]["name"] for c in listed.items]
    assert len(names) == len(set(names)) == 1100
    assert [verb for verb, *_ in calls] == ["list", "list", "list"]  # 500 + 500 + 100


async def test_label_and_field_selectors_narrow_lists(api: KubeApi) -> None:
    await api.create("pods", NS, pod("jupyter-ada", user="ada"))
    await api.create("pods", NS, pod("jupyter-bob", user="bob"))
    by_label = await api.list("pods", NS, label_selector="user=bob")
    by_field = await api.list("pods", NS, field_selector="metadata.name=jupyter-ada")
    assert [p["metadata"]["name"] for p in by_label.items] == ["jupyter-bob"]
    assert [p["metadata"]["name"] for p in by_field.items] == ["jupyter-ada"]


async def test_merge_patch_adds_and_removes_keys(api: KubeApi) -> None:
    await api.create("pods", NS, pod("jupyter-ada", app="podgate", stale="yes"))
    patched = await api.patch(
        "pods", NS, "jupyter-ada", {"metadata": {"labels": {"stale": None, "seen": "1"}}}
    )
    assert patched["metadata"]["labels"] == {"app": "podgate", "seen": "1"}
    assert (await api.get("pods", NS, "jupyter-ada"))["metadata"]["labels"]["seen"] == "1"


async def test_delete_sends_the_grace_period(api: KubeApi) -> None:
    body = pod("jupyter-ada")
    body["spec"]["nodeName"] = "node-1"  # placed: deletion waits for a kubelet (none here)
    await api.create("pods", NS, body)
    await api.delete("pods", NS, "jupyter-ada", grace_seconds=7)
    terminating = await api.get("pods", NS, "jupyter-ada")
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 7
    assert terminating["metadata"]["deletionTimestamp"]


async def test_ensure_namespace_creates_once(api: KubeApi) -> None:
    await ensure_namespace(api, "users")
    await ensure_namespace(api, "users")  # AlreadyExists is fine
    names = [n["metadata"]["name"] for n in (await api.list("namespaces", "")).items]
    assert names.count("users") == 1
    assert (await api.create("pods", "users", pod("jupyter-ada")))["metadata"][
        "namespace"
    ] == "users"


# -- watch -----------------------------------------------------------------------------------


async def test_watch_yields_changes_in_order(api: KubeApi) -> None:
    version = (await api.list("pods", NS)).resource_version
    await api.create("pods", NS, pod("jupyter-ada"))
    await api.patch("pods", NS, "jupyter-ada", {"metadata": {"labels": {"x": "1"}}})
    await api.delete("pods", NS, "jupyter-ada")
    events = await collect(api, version, until=4, timeout_seconds=5)
    # The deletion of an unscheduled pod: stamped (MODIFIED), then removed.
    assert [e.type for e in events] == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    assert events[1].object["metadata"]["labels"] == {"x": "1"}
    assert events[2].object["metadata"]["deletionGracePeriodSeconds"] == 0


async def test_watch_yields_bookmarks_and_ends_cleanly(api: KubeApi, calls: Calls) -> None:
    version = (await api.list("pods", NS)).resource_version
    started = time.monotonic()
    events = [e async for e in api.watch("pods", NS, resource_version=version, timeout_seconds=1)]
    assert 0.9 <= time.monotonic() - started < 4
    assert [e.type for e in events] == ["BOOKMARK"]  # sent as the server ends the watch
    assert events[0].object["metadata"]["resourceVersion"]
    assert ("watch", "pods", 200) in [c[:3] for c in calls]


async def test_watch_from_a_forgotten_version_raises_expired(
    make_cluster: Callable[..., Awaitable[SimCluster]], connect: Connect
) -> None:
    cluster = await make_cluster(kubelet=None, history_size=5)
    api = await connect(kubeconfig=cluster.kubeconfig(NS))
    first = (await api.list("pods", NS)).resource_version
    for index in range(12):
        await api.create("pods", NS, pod(f"jupyter-{index}"))
    with pytest.raises(Expired) as raised:
        async for _ in api.watch("pods", NS, resource_version=first, timeout_seconds=2):
            pass
    assert raised.value.status == 410


@pytest.fixture
async def scripted_watch(
    aiohttp_server: Any, api_cluster: SimCluster, connect: Connect
) -> Callable[[list[bytes], bool], Awaitable[KubeApi]]:
    """A KubeApi on a tiny server that answers any watch with given bytes, then ends or tears.

    It stands in for a misbehaving API server: kubesim itself always ends streams cleanly.
    """

    async def factory(lines: list[bytes], tear: bool) -> KubeApi:
        async def answer(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for line in lines:
                await response.write(line)
            if tear:
                assert request.transport is not None
                request.transport.close()  # no final chunk: the stream breaks mid-way
            return response

        app = web.Application()
        app.router.add_get("/api/v1/namespaces/{namespace}/pods", answer)
        server = await aiohttp_server(app)
        config = api_cluster.kubeconfig(NS)
        config["clusters"][0]["cluster"]["server"] = str(server.make_url(""))  # type: ignore[index]
        return await connect(kubeconfig=config)

    return factory


ADDED_LINE = (
    b'{"type":"ADDED","object":{"metadata":{"name":"jupyter-ada","resourceVersion":"7"}}}\n'
)


async def events_of(api: KubeApi) -> list[str]:
    async with asyncio.timeout(5):
        return [e.type async for e in api.watch("pods", NS, resource_version="6")]


async def test_watch_broken_mid_way_is_unavailable(scripted_watch: Any) -> None:
    api = await scripted_watch([ADDED_LINE, b'{"type":"MODIFIED","obj'], True)
    with pytest.raises(KubeUnavailable) as raised:
        await events_of(api)
    assert raised.value.status == 0
    assert raised.value.__cause__ is not None  # the transport error, chained


async def test_watch_torn_inside_an_event_is_unavailable(scripted_watch: Any) -> None:
    api = await scripted_watch([ADDED_LINE, b'{"type":"MODIFIED","obj'], False)
    with pytest.raises(KubeUnavailable):
        await events_of(api)


async def test_watch_error_events(scripted_watch: Any) -> None:
    expired = (
        b'{"type":"ERROR","object":{"kind":"Status","status":"Failure","code":410,'
        b'"reason":"Expired","message":"too old resource version: 6 (9)"}}\n'
    )
    other = b'{"type":"ERROR","object":{"kind":"Status","code":500,"reason":"InternalError"}}\n'
    with pytest.raises(Expired) as gone:
        await events_of(await scripted_watch([ADDED_LINE, expired], False))
    assert "too old resource version" in gone.value.message
    with pytest.raises(KubeUnavailable) as failed:
        await events_of(await scripted_watch([other], False))
    assert failed.value.status == 500
    with pytest.raises(KubeUnavailable):
        await events_of(await scripted_watch([b"not json\n"], False))


async def test_watch_that_ends_cleanly_just_ends(scripted_watch: Any) -> None:
    assert await events_of(await scripted_watch([ADDED_LINE, ADDED_LINE], False)) == [
        "ADDED",
        "ADDED",
    ]


# -- failures, each one a KubeError --------------------------------------------------------


async def test_missing_and_existing_objects(api: KubeApi) -> None:
    with pytest.raises(NotFound) as missing:
        await api.get("pods", NS, "jupyter-nobody")
    assert missing.value.status == 404
    await api.create("pods", NS, pod("jupyter-ada"))
    with pytest.raises(AlreadyExists) as twice:
        await api.create("pods", NS, pod("jupyter-ada"))
    assert (twice.value.status, twice.value.reason) == (409, "AlreadyExists")


async def test_conflict_is_not_already_exists(
    api: KubeApi, api_cluster: SimCluster, set_faults: FaultSetter
) -> None:
    await api.create("pods", NS, pod("jupyter-ada"))
    await set_faults(api_cluster, {"errors": {"patch": {"code": 409, "count": 1}}})
    with pytest.raises(Conflict) as raised:
        await api.patch("pods", NS, "jupyter-ada", {"metadata": {"labels": {"x": "1"}}})
    assert not isinstance(raised.value, AlreadyExists)
    assert raised.value.status == 409


async def test_invalid_objects_are_invalid(api: KubeApi) -> None:
    no_containers = {"metadata": {"name": "jupyter-ada"}, "spec": {"containers": []}}
    with pytest.raises(Invalid) as unprocessable:
        await api.create("pods", NS, no_containers)
    assert unprocessable.value.status == 422
    bad_name = pod("Not_A_DNS_Name")
    with pytest.raises(Invalid):
        await api.create("pods", NS, bad_name)
    elsewhere = pod("jupyter-ada")
    elsewhere["metadata"]["namespace"] = "default"  # body and URL disagree: 400
    with pytest.raises(Invalid) as bad_request:
        await api.create("pods", NS, elsewhere)
    assert bad_request.value.status == 400


async def test_read_only_and_wrong_tokens_are_forbidden(
    api_cluster: SimCluster, connect: Connect
) -> None:
    viewer = await connect(kubeconfig=api_cluster.kubeconfig(NS, read_only=True))
    assert (await viewer.list("pods", NS)).items == []  # reading is allowed
    with pytest.raises(Forbidden) as refused:
        await viewer.create("pods", NS, pod("jupyter-ada"))
    assert refused.value.status == 403
    config = api_cluster.kubeconfig(NS)
    config["users"][0]["user"]["token"] = "not-the-token"  # type: ignore[index]
    stranger = await connect(kubeconfig=config)
    with pytest.raises(Forbidden) as unknown:
        await stranger.list("pods", NS)
    assert unknown.value.status == 401


async def test_server_errors_are_unavailable(
    api: KubeApi, api_cluster: SimCluster, set_faults: FaultSetter
) -> None:
    await set_faults(api_cluster, {"errors": {"list": {"code": 500, "count": 1}}})
    with pytest.raises(KubeUnavailable) as raised:
        await api.list("pods", NS)
    assert raised.value.status == 500
    assert (await api.list("pods", NS)).items == []  # the fault was for one call


async def test_throttling_carries_retry_after(
    api: KubeApi, api_cluster: SimCluster, set_faults: FaultSetter
) -> None:
    await set_faults(
        api_cluster, {"errors": {"create": {"code": 429, "count": 1, "retry_after": 3}}}
    )
    with pytest.raises(KubeThrottled) as raised:
        await api.create("pods", NS, pod("jupyter-ada"))
    assert (raised.value.status, raised.value.retry_after) == (429, 3.0)
    assert (await api.create("pods", NS, pod("jupyter-ada")))["metadata"]["name"] == "jupyter-ada"


async def test_refused_connection_is_unavailable(
    api_cluster: SimCluster, connect: Connect, calls: Calls
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = api_cluster.kubeconfig(NS)
    config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{port}"  # type: ignore[index]
    api = await connect(kubeconfig=config, observer=lambda *c: calls.append(c))
    for call in (
        api.get("pods", NS, "x"),
        api.list("pods", NS),
        api.create("pods", NS, pod("x")),
        api.delete("pods", NS, "x"),
        api.patch("pods", NS, "x", {}),
    ):
        with pytest.raises(KubeUnavailable) as raised:
            await call
        assert raised.value.status == 0
        assert raised.value.__cause__ is not None  # the transport error stays chained
    with pytest.raises(KubeUnavailable):
        async for _ in api.watch("pods", NS, resource_version="1"):
            pass
    assert {code for _, _, code, _ in calls} == {0}
    assert [verb for verb, *_ in calls] == ["get", "list", "create", "delete", "patch", "watch"]


async def test_slow_api_times_out_as_unavailable(
    api_cluster: SimCluster, connect: Connect, set_faults: FaultSetter
) -> None:
    api = await connect(kubeconfig=api_cluster.kubeconfig(NS), request_timeout=0.3)
    await set_faults(api_cluster, {"latency_ms": 1500})
    started = time.monotonic()
    with pytest.raises(KubeUnavailable) as raised:
        await api.get("pods", NS, "jupyter-ada")
    assert time.monotonic() - started < 1.2
    assert (raised.value.status, raised.value.reason) == (0, "Timeout")
    await set_faults(api_cluster, {"reset": True})


async def test_unloadable_kubeconfig_is_a_kube_error(tmp_path: Path) -> None:
    with pytest.raises(KubeError) as missing:
        await connect_kube(kubeconfig=str(tmp_path / "absent"))
    assert missing.value.reason == "BadKubeconfig"
    with pytest.raises(KubeError):
        await connect_kube(kubeconfig={"clusters": [], "contexts": [], "users": []}, context="x")


async def test_in_cluster_without_a_service_account_is_a_kube_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeError) as raised:
        await connect_kube(in_cluster=True)
    assert (raised.value.status, raised.value.reason) == (0, "BadKubeconfig")


async def test_a_failing_observer_does_not_fail_the_call(api_cluster: SimCluster) -> None:
    def broken(verb: str, resource: str, code: int, seconds: float) -> None:
        raise RuntimeError("metrics bug")

    api = await connect_kube(kubeconfig=api_cluster.kubeconfig(NS), observer=broken)
    try:
        assert (await api.list("pods", NS)).items == []
    finally:
        await api.close()


async def test_tls_cluster_works(
    make_cluster: Callable[..., Awaitable[SimCluster]], connect: Connect, tmp_path: Path
) -> None:
    cluster = await make_cluster(kubelet=None, tls=True)
    assert cluster.url.startswith("https://")
    path = cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    api = await connect(kubeconfig=str(path))
    version = (await api.list("pods", NS)).resource_version
    await api.create("pods", NS, pod("jupyter-ada"))
    events = await collect(api, version, until=1, timeout_seconds=3)
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [("ADDED", "jupyter-ada")]


async def test_api_calls_do_not_consult_the_environment_per_call(
    api_cluster: SimCluster, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No thread hop per call to read ~/.netrc; the environment's proxy is read once."""
    api = await connect(kubeconfig=api_cluster.kubeconfig(NS), request_timeout=2.0)
    loop = asyncio.get_running_loop()
    hops: list[object] = []
    real = loop.run_in_executor

    def counting(executor: Any, func: Any, *args: Any) -> Any:
        hops.append(func)
        return real(executor, func, *args)

    monkeypatch.setattr(loop, "run_in_executor", counting)
    await api.create("pods", NS, pod("no-hops"))
    assert await api.get("pods", NS, "no-hops") is not None
    assert hops == []


async def test_the_environments_proxy_is_used_unless_bypassed(
    api_cluster: SimCluster, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTPS_PROXY/NO_PROXY keep their meaning, read once at connect."""
    with socket.socket() as probe:  # nothing listens here: a proxy that is down
        probe.bind(("127.0.0.1", 0))
        refusing = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, refusing)
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxied = await connect(kubeconfig=api_cluster.kubeconfig(NS), request_timeout=2.0)
    with pytest.raises(KubeUnavailable):
        await proxied.get("pods", NS, "nobody")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    direct = await connect(kubeconfig=api_cluster.kubeconfig(NS), request_timeout=2.0)
    with pytest.raises(NotFound):  # the API server itself answered
        await direct.get("pods", NS, "nobody")
