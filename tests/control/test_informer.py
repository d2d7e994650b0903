"""The pod informer: list, watch, resume, relist, back-off, stop.

List, watch and relist on a timer run on both API servers (both_servers).
What needs a fault (dropped watches, outages, a 410 on resume) or a server
stopped and started again uses kubesim's hooks (kubesim_only): the real
server cannot be made to answer a resume with 410 in bounded time, since its
watch cache serves old resourceVersions until etcd compacts them (minutes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from kube_servers import RealServer

from control.informer import Informer
from control.k8s import KubeApi, connect_kube
from kubesim.cluster import SimCluster

pytestmark = pytest.mark.both_servers

NS = "podgate"
# No scheduler serves this name: on the real server such a pod is never bound,
# so no one but the test changes it (kubesim's api_cluster has no kubelet at all).
UNSCHEDULED = "podgate-tests-no-scheduler"
Seen = list[tuple[str, str]]
FaultSetter = Callable[[SimCluster, dict[str, Any]], Awaitable[dict[str, Any]]]


def pod(name: str, scheduled: bool = False, **labels: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "notebook", "image": "kubesim/echo"}]}
    if not scheduled:
        spec["schedulerName"] = UNSCHEDULED
    return {"metadata": {"name": name, "labels": {"app": "podgate", **labels}}, "spec": spec}


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    """Poll (bounded) until check() holds."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def sim_api_cluster(make_cluster: Callable[..., Awaitable[SimCluster]]) -> SimCluster:
    return await make_cluster(kubelet=None, bookmark_interval=0.3)


@pytest.fixture
def api_cluster(request: pytest.FixtureRequest, kube_server: str) -> SimCluster | RealServer:
    """kubesim without a kubelet, or the real server (a sync selector of async fixtures)."""
    name = "real_server" if kube_server == "realkube" else "sim_api_cluster"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
async def api(api_cluster: SimCluster | RealServer) -> AsyncIterator[KubeApi]:
    kube = await connect_kube(kubeconfig=api_cluster.kubeconfig(NS), request_timeout=2.0)
    yield kube
    await kube.close()


@pytest.fixture
async def informers() -> AsyncIterator[list[Informer]]:
    """Informers a test starts; all stopped after it."""
    started: list[Informer] = []
    yield started
    for informer in started:
        await informer.stop()


@pytest.fixture
def seen() -> Seen:
    return []


@pytest.fixture
def start(
    api: KubeApi, informers: list[Informer], seen: Seen
) -> Callable[..., Awaitable[Informer]]:
    async def factory(**options: Any) -> Informer:
        options.setdefault("label_selector", "app=podgate")
        options.setdefault("backoff_max", 0.5)
        informer = Informer(api, "pods", NS, **options)
        informer.add_listener(lambda kind, obj, old: seen.append((kind, obj["metadata"]["name"])))
        informers.append(informer)
        await informer.start()
        async with asyncio.timeout(5):
            await informer.synced.wait()
        return informer

    return factory


async def test_first_list_fills_the_cache_and_sets_synced(
    api: KubeApi, start: Callable[..., Awaitable[Informer]], seen: Seen
) -> None:
    for name in ("jupyter-ada", "jupyter-bob"):
        await api.create("pods", NS, pod(name))
    await api.create("pods", NS, {**pod("other"), "metadata": {"name": "other"}})  # no label
    informer = await start()
    assert sorted(informer.cache) == ["jupyter-ada", "jupyter-bob"]
    assert sorted(seen) == [("ADDED", "jupyter-ada"), ("ADDED", "jupyter-bob")]
    assert informer.restarts == 0


async def test_changes_reach_listeners_in_order(
    api: KubeApi, start: Callable[..., Awaitable[Informer]], seen: Seen
) -> None:
    informer = await start()
    olds: list[Any] = []
    informer.add_listener(lambda kind, obj, old: olds.append(old))
    await api.create("pods", NS, pod("jupyter-ada"))
    await api.patch("pods", NS, "jupyter-ada", {"metadata": {"labels": {"ready": "yes"}}})
    await api.delete("pods", NS, "jupyter-ada")
    await until(lambda: len(seen) == 4)
    # An unscheduled pod's deletion, as on the real server: stamped, then removed.
    assert seen == [
        ("ADDED", "jupyter-ada"),
        ("MODIFIED", "jupyter-ada"),
        ("MODIFIED", "jupyter-ada"),
        ("DELETED", "jupyter-ada"),
    ]
    assert olds[0] is None
    assert olds[1]["metadata"]["labels"] == {"app": "podgate"}  # MODIFIED carries the old object
    assert olds[2]["metadata"]["labels"]["ready"] == "yes"
    assert "deletionTimestamp" not in olds[2]["metadata"]
    assert olds[3]["metadata"]["deletionGracePeriodSeconds"] == 0
    assert informer.cache == {}


@pytest.mark.kubesim_only
async def test_dropped_watch_resumes_without_relist_or_loss(
    api: KubeApi,
    api_cluster: SimCluster,
    start: Callable[..., Awaitable[Informer]],
    seen: Seen,
    set_faults: FaultSetter,
) -> None:
    informer = await start()
    for round_ in range(3):
        await set_faults(api_cluster, {"drop_watches": True})
        await api.create("pods", NS, pod(f"jupyter-{round_}"))
    await until(lambda: len(informer.cache) == 3)
    assert [kind for kind, _ in seen] == ["ADDED"] * 3
    assert informer.restarts == 0


@pytest.mark.kubesim_only
async def test_expired_resume_relists_and_synthesises_what_was_missed(
    api: KubeApi,
    api_cluster: SimCluster,
    start: Callable[..., Awaitable[Informer]],
    seen: Seen,
    set_faults: FaultSetter,
) -> None:
    for name in ("jupyter-ada", "jupyter-bob"):
        await api.create("pods", NS, pod(name))
    informer = await start()
    await informer.stop()  # the cache and its version stay; nothing is watching now
    seen.clear()
    await api.delete("pods", NS, "jupyter-ada")
    await api.patch("pods", NS, "jupyter-bob", {"metadata": {"labels": {"ready": "yes"}}})
    await api.create("pods", NS, pod("jupyter-cy"))
    await set_faults(api_cluster, {"expire_next_watch": True})

    await informer.start()  # resumes from its old version and gets 410
    await until(lambda: len(seen) == 3)
    assert sorted(seen) == [
        ("ADDED", "jupyter-cy"),
        ("DELETED", "jupyter-ada"),
        ("MODIFIED", "jupyter-bob"),
    ]
    assert sorted(informer.cache) == ["jupyter-bob", "jupyter-cy"]
    assert informer.cache["jupyter-bob"]["metadata"]["labels"]["ready"] == "yes"
    assert informer.restarts == 1


@pytest.mark.kubesim_only
async def test_recreated_object_is_deleted_then_added(
    api: KubeApi,
    api_cluster: SimCluster,
    start: Callable[..., Awaitable[Informer]],
    seen: Seen,
    set_faults: FaultSetter,
) -> None:
    await api.create("pods", NS, pod("jupyter-ada"))
    informer = await start()
    await informer.stop()
    seen.clear()
    await api.delete("pods", NS, "jupyter-ada")
    await api.create("pods", NS, pod("jupyter-ada"))  # same name, new uid
    await set_faults(api_cluster, {"expire_next_watch": True})
    await informer.start()
    await until(lambda: len(seen) == 2)
    assert seen == [("DELETED", "jupyter-ada"), ("ADDED", "jupyter-ada")]


@pytest.mark.kubesim_only
async def test_api_outage_backs_off_then_recovers(
    api: KubeApi,
    api_cluster: SimCluster,
    start: Callable[..., Awaitable[Informer]],
    set_faults: FaultSetter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await api.create("pods", NS, pod("jupyter-ada"))
    informer = await start()
    caplog.set_level(logging.INFO, logger="control.informer")
    outage = {"code": 503}
    await set_faults(
        api_cluster, {"errors": {"watch": outage, "list": outage}, "drop_watches": True}
    )
    await api.delete("pods", NS, "jupyter-ada")  # missed while the API is down for watches
    await api.create("pods", NS, pod("jupyter-bob"))
    await asyncio.sleep(2.0)
    assert sorted(informer.cache) == ["jupyter-ada"]  # stale, but still served
    await set_faults(api_cluster, {"reset": True})
    await until(lambda: sorted(informer.cache) == ["jupyter-bob"], within=5)
    assert informer.restarts >= 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one line per state change, not one per retry
    assert "503" in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
    await until(lambda: any("watching again" in r.getMessage() for r in caplog.records))


@pytest.mark.kubesim_only
async def test_server_gone_and_back_on_the_same_port(
    make_cluster: Callable[..., Awaitable[SimCluster]],
    informers: list[Informer],
    seen: Seen,
) -> None:
    first = await make_cluster(kubelet=None)
    api = await connect_kube(kubeconfig=first.kubeconfig(NS), request_timeout=1.0)
    try:
        await api.create("pods", NS, pod("jupyter-ada"))
        informer = Informer(api, "pods", NS, backoff_max=0.5)
        informer.add_listener(lambda kind, obj, old: seen.append((kind, obj["metadata"]["name"])))
        informers.append(informer)
        await informer.start()
        await until(lambda: "jupyter-ada" in informer.cache)
        port = first.port
        await first.stop()
        await asyncio.sleep(1.0)  # refused connections meanwhile
        second = await make_cluster(kubelet=None, port=port, token=first.token)
        assert second.url == first.url  # same address and token: the same client reaches it
        await api.create("pods", NS, pod("jupyter-bob"))
        await until(lambda: sorted(informer.cache) == ["jupyter-bob"], within=5)
        assert seen == [
            ("ADDED", "jupyter-ada"),
            ("DELETED", "jupyter-ada"),
            ("ADDED", "jupyter-bob"),
        ]
        assert informer.restarts >= 1
    finally:
        await api.close()


async def test_a_failing_listener_does_not_stop_the_informer(
    api: KubeApi, start: Callable[..., Awaitable[Informer]], seen: Seen
) -> None:
    informer = await start()

    def broken(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        raise RuntimeError("listener bug")

    informer.add_listener(broken)
    await api.create("pods", NS, pod("jupyter-ada"))
    await api.create("pods", NS, pod("jupyter-bob"))
    await until(lambda: len(seen) == 2)
    assert sorted(informer.cache) == ["jupyter-ada", "jupyter-bob"]


async def test_restart_timer_relists_without_spurious_events(
    start: Callable[..., Awaitable[Informer]], api: KubeApi, seen: Seen
) -> None:
    await api.create("pods", NS, pod("jupyter-ada"))
    informer = await start(restart_seconds=1.0)
    await until(lambda: informer.restarts >= 2, within=5)
    assert seen == [("ADDED", "jupyter-ada")]  # same versions on relist: nothing to tell


# kubesim sends a bookmark every 0.3 s here; the real server about once a minute.
@pytest.mark.kubesim_only
async def test_bookmarks_keep_last_event_time_fresh(
    start: Callable[..., Awaitable[Informer]],
) -> None:
    informer = await start()
    began = time.time()
    await until(lambda: informer.last_event_time >= began, within=3)


@pytest.mark.kubesim_only
async def test_stop_ends_the_task_even_while_backing_off(
    api_cluster: SimCluster, api: KubeApi, set_faults: FaultSetter
) -> None:
    await set_faults(api_cluster, {"errors": {"list": {"code": 500}}})
    informer = Informer(api, "pods", NS, backoff_max=30.0)
    await informer.start()
    await asyncio.sleep(0.3)
    assert not informer.synced.is_set()
    await informer.stop()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("informer-")]


async def test_pods_on_the_sim_kubelet_become_running(
    kube: KubeApi, informers: list[Informer]
) -> None:
    informer = Informer(kube, "pods", NS)
    informers.append(informer)
    await informer.start()
    await kube.create("pods", NS, pod("jupyter-ada", scheduled=True))

    def running() -> bool:
        found = informer.cache.get("jupyter-ada")
        return bool(found and found.get("status", {}).get("phase") == "Running")

    await until(running, within=10)
    assert informer.cache["jupyter-ada"]["status"]["podIP"].startswith("127.")


async def test_a_bounded_cache_keeps_the_newest_and_listeners_hear_everything(
    api: KubeApi, start: Callable[..., Awaitable[Informer]], seen: Seen
) -> None:
    informer = await start(max_cached=3)
    for i in range(5):
        await api.create("pods", NS, pod(f"jupyter-u{i}"))
    await until(lambda: len(seen) == 5)
    assert [name for _, name in seen] == [f"jupyter-u{i}" for i in range(5)]
    assert list(informer.cache) == ["jupyter-u2", "jupyter-u3", "jupyter-u4"]
