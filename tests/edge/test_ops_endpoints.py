"""The ops port as a scraper, a kubelet probe and an operator see it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from edge.ops import build_ops_app
from metrics import EdgeStats, PodgateMetrics
from routes import RouteSource, RouteTable

MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def table() -> RouteTable:
    return RouteTable()


@pytest.fixture
def stats() -> EdgeStats:
    return EdgeStats()


@pytest.fixture
def ready() -> list[bool]:
    return [False]


@pytest.fixture
async def ops(
    aiohttp_client: MakeClient, table: RouteTable, stats: EdgeStats, ready: list[bool]
) -> TestClient:
    metrics = PodgateMetrics(stats, table_size=lambda: len(table))
    app = build_ops_app(table=table, metrics=metrics, api_token="tok", is_ready=lambda: ready[0])
    return await aiohttp_client(app)


async def test_healthz_answers_while_the_process_runs(ops: TestClient) -> None:
    resp = await ops.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_follows_is_ready(ops: TestClient, ready: list[bool]) -> None:
    resp = await ops.get("/readyz")
    assert resp.status == 503
    ready[0] = True
    resp = await ops.get("/readyz")
    assert resp.status == 200
    ready[0] = False
    assert (await ops.get("/readyz")).status == 503


async def test_metrics_scrape_shows_live_counters_and_route_count(
    ops: TestClient, table: RouteTable, stats: EdgeStats
) -> None:
    table.add("/user/alice", "http://127.0.0.1:9/", source=RouteSource.PODS, user="alice")
    stats.request_done("GET", 200, "user", 0.002)
    stats.cookie_rejected("bad_signature")
    resp = await ops.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(await resp.text())
        for s in family.samples
    }
    assert found[("podgate_routes", ())] == 1
    assert found[("podgate_cookie_rejections_total", (("reason", "bad_signature"),))] == 1
    key = (("code", "200"), ("method", "GET"), ("route_kind", "user"))
    assert found[("podgate_requests_total", key)] == 1


async def test_route_api_is_served_on_the_ops_app_with_its_token(ops: TestClient) -> None:
    assert (await ops.get("/api/routes")).status == 403
    resp = await ops.get("/api/routes", headers={"Authorization": "token tok"})
    assert resp.status == 200
    assert await resp.json() == {}


async def test_unknown_ops_path_and_wrong_method_are_refused(ops: TestClient) -> None:
    assert (await ops.get("/nope")).status == 404
    assert (await ops.post("/healthz")).status == 405


async def test_oversized_api_body_is_refused_not_buffered(ops: TestClient) -> None:
    resp = await ops.post(
        "/api/routes/user/x",
        data=b'{"target": "' + b"a" * (1024 * 1024) + b'"}',
        headers={"Authorization": "token tok"},
    )
    assert resp.status == 413
