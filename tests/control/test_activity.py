"""Activity: edge traffic, written to the pod annotation, read back by another replica.

Real podgates (echo pods, activity written every 0.2 s) on one kubesim;
traffic is a signed-in browser's requests through the edge.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hub_kit import Browser

from control.activity import ACTIVITY_ANNOTATION, parse_activity
from control.k8s import KubeApi
from kubesim.cluster import SimCluster
from podgate.assembly import Podgate

NAMESPACE = "podgate"
EVERY = 0.2  # seconds between annotation writes in these tests
SETTINGS: dict[str, Any] = {"culler": {"activity_every": EVERY}}

MakePodgate = Callable[..., Awaitable[Podgate]]


def _on(cluster: SimCluster, tmp_path: Path) -> dict[str, Any]:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
    return {**SETTINGS, "cluster": {"kind": "kube", "kubeconfig": str(kubeconfig)}}


async def _until(check: Callable[[], Awaitable[bool] | bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while True:
            outcome = check()
            if await outcome if isinstance(outcome, Awaitable) else outcome:
                return
            await asyncio.sleep(0.05)


def _routed(pg: Podgate, user: str) -> bool:
    return pg.table.get(f"/user/{user}") is not None


def _activity(pg: Podgate, user: str) -> float | None:
    assert pg.control is not None and pg.control.activity is not None
    return pg.control.activity.last_activity(user)


async def _annotation(kube: KubeApi, user: str) -> float | None:
    pod = await kube.get("pods", NAMESPACE, f"jupyter-{user}")
    return parse_activity((pod["metadata"].get("annotations") or {}).get(ACTIVITY_ANNOTATION))


async def test_traffic_reaches_the_annotation_and_the_other_replica(
    cluster: SimCluster, kube: KubeApi, make_podgate: MakePodgate, tmp_path: Path
) -> None:
    first = await make_podgate(_on(cluster, tmp_path))
    second = await make_podgate(_on(cluster, tmp_path))
    async with Browser(first.public_url) as browser:
        events = await browser.start_server("ada")
        assert events[-1].get("ready"), events
        await _until(lambda: _routed(first, "ada") and _routed(second, "ada"))
        # A server nobody used has no activity anywhere, however long it runs.
        await asyncio.sleep(3 * EVERY)
        assert await _annotation(kube, "ada") is None
        assert _activity(first, "ada") is None
        assert _activity(second, "ada") is None
        assert first.control and first.control.activity
        assert first.control.activity.active_users(0.0) == 0

        before = time.time()
        response = await browser.get("/user/ada/lab")
        assert response.status == 200
        after = time.time()

    local = _activity(first, "ada")
    assert local is not None and before <= local <= after
    # Written within a round or two, to the millisecond.
    await _until(lambda: _has_annotation(kube, "ada"), seconds=5)
    written = await _annotation(kube, "ada")
    assert written is not None and abs(written - local) < 0.002
    # The other replica saw no traffic itself, yet knows of it through its pod watch.
    await _until(lambda: _activity(second, "ada") is not None, seconds=5)
    assert _activity(second, "ada") == written
    assert second.control and second.control.activity
    assert second.control.activity.active_users(before - 1) == 1
    assert second.control.activity.active_users(after + 60) == 0


async def _has_annotation(kube: KubeApi, user: str) -> bool:
    return await _annotation(kube, user) is not None


async def test_a_restarted_podgate_does_not_count_new_routes_as_activity(
    cluster: SimCluster, kube: KubeApi, make_podgate: MakePodgate, tmp_path: Path
) -> None:
    settings = _on(cluster, tmp_path)
    old = await make_podgate(settings)
    async with Browser(old.public_url) as ada, Browser(old.public_url) as bob:
        assert (await ada.start_server("ada"))[-1].get("ready")
        assert (await bob.start_server("bob"))[-1].get("ready")
        await _until(lambda: _routed(old, "ada") and _routed(old, "bob"))
        response = await ada.get("/user/ada/tree")
        assert response.status == 200
    await _until(lambda: _has_annotation(kube, "ada"), seconds=5)
    used = await _annotation(kube, "ada")
    await old.stop()

    await asyncio.sleep(0.5)  # so a route made now is visibly newer than ada's traffic
    new = await make_podgate(settings)
    await _until(lambda: _routed(new, "ada") and _routed(new, "bob"))
    await asyncio.sleep(3 * EVERY)
    # ada keeps the activity she really had, not the restart time; bob had none.
    assert _activity(new, "ada") == used
    assert _activity(new, "bob") is None
    assert await _annotation(kube, "bob") is None


async def test_a_failed_write_is_tried_again_and_the_local_view_stays(
    make_podgate: MakePodgate,
    set_faults: Callable[..., Awaitable[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pg = await make_podgate(SETTINGS)
    assert pg.cluster is not None and pg.control is not None and pg.control.kube is not None
    kube = pg.control.kube
    async with Browser(pg.public_url) as browser:
        assert (await browser.start_server("ada"))[-1].get("ready")
        await _until(lambda: _routed(pg, "ada"))
        await set_faults(pg.cluster, {"errors": {"patch": {"code": 500}}})
        try:
            response = await browser.get("/user/ada/lab")
            assert response.status == 200
            await asyncio.sleep(4 * EVERY)
            # The API refuses every write: nothing written, the traffic still counts here.
            assert await _annotation(kube, "ada") is None
            assert _activity(pg, "ada") is not None
        finally:
            await set_faults(pg.cluster, {"reset": True})
        await _until(lambda: _has_annotation(kube, "ada"), seconds=5)
        written, local = await _annotation(kube, "ada"), _activity(pg, "ada")
        assert written is not None and local is not None and abs(written - local) < 0.002
    # One warning for the whole streak of failed rounds, not one per round.
    warnings = [
        r for r in caplog.records if r.name == "control.activity" and r.levelname == "WARNING"
    ]
    assert len(warnings) == 1, warnings
