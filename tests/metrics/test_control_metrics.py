"""What Prometheus sees of the control plane: a real podgate, driven by a browser, scraped.

Sign-ins (good, bad, throttled), a spawn, a spawn that fails on its image, a
stop, and the Kubernetes calls they make must each move the series named
like JupyterHub's, under podgate_; every known label value is there at 0
before anything happens, so a dashboard never shows "no data".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from hub_kit import Browser, xsrf_of
from prometheus_client.parser import text_string_to_metric_families

MakePodgate = Callable[..., Awaitable[Any]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# No program of this name exists: kubesim treats it as an image that cannot be pulled.
BROKEN_PROFILE = {
    "spawner": {
        "profiles": [
            {"slug": "echo", "display_name": "Echo", "default": True},
            {
                "slug": "broken",
                "display_name": "Broken",
                "image": "example.org/no-such-program-podgate:1",
            },
        ]
    }
}
SPAWN = "podgate_server_spawn_duration_seconds"
LOGIN = "podgate_login_duration_seconds"


async def scrape(pg: Any) -> Samples:
    async with (
        aiohttp.ClientSession() as session,
        session.get(pg.ops_url + "/metrics") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in found, f"no series {name}{labels}"
    return found[key]


async def eventually(pg: Any, check: Callable[[Samples], bool], seconds: float = 10.0) -> Samples:
    """Scrape until `check` holds (bounded in time); the last scrape either way."""
    deadline = time.monotonic() + seconds
    found = await scrape(pg)
    while not check(found) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        found = await scrape(pg)
    return found


async def spawn(browser: Browser, user: str, profile: str) -> list[dict[str, Any]]:
    """Sign in, pick `profile` on the spawn form, follow progress to the end."""
    assert (await browser.login(user, next_url="/hub/home")).status == 200
    form = xsrf_of(await (await browser.get("/hub/spawn")).text())
    start = await browser.post(
        "/hub/spawn", {"_xsrf": form, "profile": profile}, allow_redirects=False
    )
    assert start.status == 303
    return await browser.progress(user, seconds=20)


async def test_a_fresh_podgate_shows_every_known_series_at_zero(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate()
    found = await eventually(
        pg,
        lambda f: (
            f.get(
                ("podgate_watch_last_event_timestamp_seconds", frozenset({("resource", "pods")})), 0
            )
            > 0
        ),
    )
    for reason in ("image_pull", "crash_loop", "out_of_memory", "unschedulable", "timeout"):
        assert value(found, SPAWN + "_count", status="failure", reason=reason) == 0
    assert value(found, SPAWN + "_count", status="success", reason="") == 0
    assert value(found, SPAWN + "_count", status="limited", reason="") == 0
    for status in ("success", "failure", "throttled"):
        assert value(found, LOGIN + "_count", status=status) == 0
    assert value(found, "podgate_server_stop_duration_seconds_count") == 0
    assert value(found, "podgate_culled_servers_total", reason="idle") == 0
    assert value(found, "podgate_culled_servers_total", reason="max_age") == 0
    assert value(found, "podgate_running_servers") == 0
    assert value(found, "podgate_total_users") == 0
    for period in ("24h", "7d", "30d"):
        assert value(found, "podgate_active_users", period=period) == 0
    assert (
        value(found, "podgate_kube_api_requests_total", verb="create", resource="pods", code="201")
        == 0
    )
    # Starting up listed and watched the pods: real calls, counted with their code.
    assert (
        value(found, "podgate_kube_api_requests_total", verb="list", resource="pods", code="200")
        >= 1
    )
    assert (
        value(
            found, "podgate_kube_api_request_duration_seconds_count", verb="list", resource="pods"
        )
        >= 1
    )
    # A bookmark or event arrived just now, and no watch has had to start over.
    for resource in ("pods", "events"):
        assert value(found, "podgate_watch_restarts_total", resource=resource) == 0
    stamp = value(found, "podgate_watch_last_event_timestamp_seconds", resource="pods")
    assert time.time() - 60 < stamp <= time.time() + 1
    assert value(found, "podgate_event_loop_lag_seconds") >= 0


async def test_sign_ins_spawns_failures_and_stops_move_the_metrics(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(BROKEN_PROFILE)
    async with Browser(pg.public_url) as ada, Browser(pg.public_url) as bob:
        refused = await ada.login("ada", password="wrong", next_url="/hub/home")
        assert refused.status == 403
        events = await spawn(ada, "ada", "echo")
        assert events[-1].get("ready") is True, events

        found = await eventually(pg, lambda f: f.get(("podgate_running_servers", frozenset())) == 1)
        assert value(found, LOGIN + "_count", status="failure") == 1
        assert value(found, LOGIN + "_count", status="success") == 1
        assert value(found, LOGIN + "_count", status="throttled") == 0
        assert value(found, SPAWN + "_count", status="success", reason="") == 1
        assert 0 < value(found, SPAWN + "_sum", status="success", reason="") < 30
        assert value(found, "podgate_running_servers") == 1
        assert value(found, "podgate_total_users") == 1
        assert (
            value(
                found, "podgate_kube_api_requests_total", verb="create", resource="pods", code="201"
            )
            == 1
        )

        # Traffic through the edge makes ada an active user.
        assert (await ada.get("/user/ada/")).status == 200
        found = await eventually(
            pg, lambda f: f.get(("podgate_active_users", frozenset({("period", "24h")}))) == 1
        )
        assert value(found, "podgate_active_users", period="24h") == 1
        assert value(found, "podgate_active_users", period="30d") == 1

        # bob's chosen image cannot be pulled: a failure, by reason.
        failed = await spawn(bob, "bob", "broken")
        assert failed[-1].get("failed") is True, failed
        found = await scrape(pg)
        assert value(found, SPAWN + "_count", status="failure", reason="image_pull") == 1
        assert value(found, SPAWN + "_count", status="success", reason="") == 1
        assert value(found, "podgate_total_users") == 2

        # ada stops her server: one stop observed, and the watch sees it go.
        token = xsrf_of(await (await ada.get("/hub/home")).text())
        stopped = await ada.post("/hub/stop", {"_xsrf": token}, allow_redirects=False)
        assert stopped.status == 303
        found = await eventually(pg, lambda f: f.get(("podgate_running_servers", frozenset())) == 0)
        assert value(found, "podgate_running_servers") == 0
        assert value(found, "podgate_server_stop_duration_seconds_count") == 1
        assert (
            value(
                found, "podgate_kube_api_requests_total", verb="delete", resource="pods", code="200"
            )
            >= 1
        )


async def test_a_throttled_sign_in_is_counted_as_throttled(make_podgate: MakePodgate) -> None:
    pg = await make_podgate({"auth": {"free_failures": 1}})
    async with Browser(pg.public_url) as eve:
        answers = [(await eve.login("eve", password="wrong")).status for _ in range(3)]
    assert answers[0] == 403 and 429 in answers, answers
    found = await scrape(pg)
    assert value(found, LOGIN + "_count", status="throttled") == answers.count(429)
    assert value(found, LOGIN + "_count", status="failure") == answers.count(403)
    assert value(found, LOGIN + "_count", status="success") == 0


async def test_a_blocked_event_loop_shows_as_lag(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    await asyncio.sleep(0.05)  # the probe is asleep, waiting for its next wake-up
    # A blocking call in the loop, as a bug would make, longer than the probe's period.
    time.sleep(pg.metrics.loop_lag.interval + 0.3)  # noqa: ASYNC251
    found = await eventually(
        pg, lambda f: f.get(("podgate_event_loop_lag_seconds", frozenset()), 0) >= 0.2
    )
    assert value(found, "podgate_event_loop_lag_seconds") >= 0.2
    h = "podgate_event_loop_wakeup_lag_seconds"
    assert value(found, h + "_count") >= 1
    # The late wake-up lands above the 0.1 s bucket.
    assert value(found, h + "_bucket", le="0.1") < value(found, h + "_bucket", le="+Inf")


async def test_a_kubernetes_api_outage_counts_as_no_answer_then_recovers() -> None:
    """Calls that got no answer are counted under code "none", not lost or raised."""
    from metrics import EdgeStats, PodgateMetrics

    metrics = PodgateMetrics(EdgeStats(), table_size=lambda: 0)
    metrics.control.kube_request_observed("get", "pods", 0, 10.0)
    metrics.control.kube_request_observed("get", "pods", 404, 0.01)
    metrics.control.kube_request_observed("list", "metrics.k8s.io/v1beta1/pods", 200, 0.02)
    found = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
    }
    requests = "podgate_kube_api_requests_total"
    assert value(found, requests, verb="get", resource="pods", code="none") == 1
    assert value(found, requests, verb="get", resource="pods", code="404") == 1
    assert value(found, requests, verb="get", resource="pods", code="200") == 0
    assert (
        value(found, requests, verb="list", resource="metrics.k8s.io/v1beta1/pods", code="200") == 1
    )
    durations = "podgate_kube_api_request_duration_seconds"
    assert value(found, durations + "_count", verb="get", resource="pods") == 2
    assert value(found, durations + "_bucket", verb="get", resource="pods", le="5.0") == 1
    # Without a control plane (proxy-only) no made-up gauge of 0 running servers appears.
    assert ("podgate_running_servers", frozenset()) not in found


async def test_a_busy_control_plane_does_not_hold_the_edge_back(make_podgate: MakePodgate) -> None:
    """The edge has its own loop: the control plane's loop busy in Python for a second
    (a storm's burst) shows as its lag, and the edge's loop keeps waking on time."""
    pg = await make_podgate()
    await asyncio.sleep(1.2)  # both probes have woken at least twice
    busy_until = time.monotonic() + pg.metrics.loop_lag.interval + 0.5
    spins = 0
    while time.monotonic() < busy_until:  # holds the interpreter lock but for switches
        spins += 1
    found = await eventually(
        pg, lambda f: f.get(("podgate_event_loop_lag_seconds", frozenset()), 0) >= 0.2
    )
    assert value(found, "podgate_event_loop_lag_seconds") >= 0.2
    assert value(found, "podgate_edge_loop_wakeup_lag_seconds_count") >= 2
    assert value(found, "podgate_edge_loop_lag_seconds") < 0.1, spins
