"""The CHP route API as JupyterHub uses it: status codes and JSON shapes as CHP answers them."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from edge.chp_api import ChpRouteApi, format_last_activity
from edge.ops import build_ops_app
from metrics import EdgeStats, PodgateMetrics
from routes import RouteSource, RouteTable

MakeClient = Callable[..., Awaitable[TestClient]]
AUTH = {"Authorization": "token secret-token"}
ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def table() -> RouteTable:
    return RouteTable()


async def serve(make: MakeClient, table: RouteTable, token: str | None) -> TestClient:
    metrics = PodgateMetrics(EdgeStats(), table_size=lambda: len(table))
    app = build_ops_app(table=table, metrics=metrics, api_token=token, is_ready=lambda: True)
    return await make(app)


@pytest.fixture
async def api(aiohttp_client: MakeClient, table: RouteTable) -> TestClient:
    return await serve(aiohttp_client, table, "secret-token")


async def test_post_then_get_returns_posted_data_with_target_and_last_activity(
    api: TestClient, table: RouteTable
) -> None:
    body = {
        "target": "http://127.0.0.1:9001",
        "user": "alice",
        "server_name": "",
        "jupyterhub": True,
    }
    before = time.time()
    resp = await api.post("/api/routes/user/alice", json=body, headers=AUTH)
    assert resp.status == 201
    assert await resp.read() == b""

    resp = await api.get("/api/routes/user/alice", headers=AUTH)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    route = await resp.json()
    assert ISO_MS_Z.fullmatch(route.pop("last_activity"))
    assert route == body

    everything = await (await api.get("/api/routes", headers=AUTH)).json()
    assert list(everything) == ["/user/alice"]
    assert everything["/user/alice"]["target"] == "http://127.0.0.1:9001"
    # the route is live in the table the edge reads, as an API route
    live = table.longest_match("/user/alice/lab")
    assert live is not None and live.source is RouteSource.API
    assert live.last_activity >= before - 0.001


async def test_trailing_slash_and_missing_leading_slash_name_the_same_route(
    api: TestClient,
) -> None:
    assert (
        await api.post("/api/routes/user/bob/", json={"target": "http://127.0.0.1:1"}, headers=AUTH)
    ).status == 201
    assert (await api.get("/api/routes/user/bob", headers=AUTH)).status == 200
    assert (await api.get("/api/routes/user/bob/", headers=AUTH)).status == 200
    assert list(await (await api.get("/api/routes", headers=AUTH)).json()) == ["/user/bob"]


async def test_root_route_can_be_added_and_removed(api: TestClient) -> None:
    resp = await api.post("/api/routes/", json={"target": "http://127.0.0.1:8081"}, headers=AUTH)
    assert resp.status == 201
    routes = await (await api.get("/api/routes", headers=AUTH)).json()
    assert routes["/"]["target"] == "http://127.0.0.1:8081"
    assert (await api.delete("/api/routes/", headers=AUTH)).status == 204
    assert await (await api.get("/api/routes", headers=AUTH)).json() == {}


async def test_post_replaces_an_api_route(api: TestClient) -> None:
    await api.post("/api/routes/x", json={"target": "http://127.0.0.1:1", "a": 1}, headers=AUTH)
    await api.post("/api/routes/x", json={"target": "http://127.0.0.1:2"}, headers=AUTH)
    route = await (await api.get("/api/routes/x", headers=AUTH)).json()
    assert route["target"] == "http://127.0.0.1:2" and "a" not in route


async def test_delete_removes_then_404s(api: TestClient, table: RouteTable) -> None:
    await api.post("/api/routes/user/c", json={"target": "http://127.0.0.1:1"}, headers=AUTH)
    resp = await api.delete("/api/routes/user/c", headers=AUTH)
    assert resp.status == 204
    assert table.longest_match("/user/c/x") is None
    assert (await api.delete("/api/routes/user/c", headers=AUTH)).status == 404
    assert (await api.get("/api/routes/user/c", headers=AUTH)).status == 404


async def test_missing_route_is_404_with_empty_body(api: TestClient) -> None:
    resp = await api.get("/api/routes/user/nobody", headers=AUTH)
    assert resp.status == 404
    assert await resp.read() == b""


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "token wrong"},
        {"Authorization": "Bearer secret-token"},
        {"Authorization": "token"},
    ],
)
async def test_wrong_or_missing_token_is_403_with_empty_body(
    api: TestClient, table: RouteTable, headers: dict[str, str]
) -> None:
    for method, path, kwargs in [
        ("GET", "/api/routes", {}),
        ("GET", "/api/routes/user/a", {}),
        ("POST", "/api/routes/user/a", {"json": {"target": "http://127.0.0.1:1"}}),
        ("DELETE", "/api/routes/user/a", {}),
    ]:
        resp = await api.request(method, path, headers=headers, **kwargs)
        assert resp.status == 403, (method, path)
        assert await resp.read() == b""
    assert len(table) == 0


async def test_token_is_found_as_chp_finds_it(api: TestClient) -> None:
    assert (
        await api.get("/api/routes", headers={"Authorization": "token   secret-token"})
    ).status == 200


async def test_no_configured_token_closes_the_api_with_a_message_saying_how_to_open_it(
    aiohttp_client: MakeClient, table: RouteTable
) -> None:
    # CHP leaves the API open without a token; on a cluster that let any user's
    # pod rewrite every route (issue 11, finding 1).
    api = await serve(aiohttp_client, table, None)
    calls = [
        api.post("/api/routes/a", json={"target": "http://127.0.0.1:1"}),
        api.post("/api/routes/a", json={"target": "http://127.0.0.1:1"}, headers=AUTH),
        api.get("/api/routes"),
        api.get("/api/routes/a", headers={"Authorization": "token "}),
        api.delete("/api/routes/a"),
    ]
    for call in calls:
        resp = await call
        assert resp.status == 403
        text = await resp.text()
        assert "proxy_auth_token" in text and "CONFIGPROXY_AUTH_TOKEN" in text
    assert len(table) == 0


USER_SPACE_PATHS = [
    "/user/bob",
    "/user/bob/lab",
    "/user/bob/lab/tree/x.ipynb",
    "/user/",
    "/user",
    "/",
    "/%75ser/bob",
    "/user%2Fbob",
    "/x/../user/bob",
    "//user//bob/",
    "/user/./bob/lab",
]


@pytest.mark.parametrize("path", USER_SPACE_PATHS)
async def test_no_route_reaches_into_the_user_space_when_it_is_reserved(
    aiohttp_client: MakeClient, table: RouteTable, path: str
) -> None:
    # A route at, under or above /user/<name>/ would take that user's traffic.
    metrics = PodgateMetrics(EdgeStats(), table_size=lambda: len(table))
    app = build_ops_app(
        table=table,
        metrics=metrics,
        api_token="secret-token",
        is_ready=lambda: True,
        reserved_prefix="/user/",
    )
    api = await aiohttp_client(app)
    resp = await api.post(
        "/api/routes" + path, json={"target": "http://127.0.0.1:6666"}, headers=AUTH
    )
    assert resp.status == 403
    assert "belongs to podgate's user servers" in await resp.text()
    assert len(table) == 0
    for beside in ("/services/culler", "/users", "/userx/bob", "/docs/user/bob"):
        resp = await api.post(
            "/api/routes" + beside, json={"target": "http://127.0.0.1:6666"}, headers=AUTH
        )
        assert resp.status == 201, beside


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b"\xff\xfe", b"NaN", b"[" * 10_000])
async def test_bad_json_is_400_even_before_the_token_check(api: TestClient, body: bytes) -> None:
    for headers in (AUTH, {}):  # CHP parses the body before it checks the token
        resp = await api.post("/api/routes/user/a", data=body, headers=headers)
        assert resp.status == 400
        assert (await resp.text()).startswith("Body not valid JSON")


@pytest.mark.parametrize(
    "body",
    [
        "{}",
        "null",
        "0",
        "[]",
        '"http://127.0.0.1:1"',
        '{"target": 5}',
        '{"target": null}',
        '{"user": "a"}',
    ],
)
async def test_missing_or_non_string_target_is_400(
    api: TestClient, table: RouteTable, body: str
) -> None:
    resp = await api.post("/api/routes/user/a", data=body, headers=AUTH)
    assert resp.status == 400
    assert await resp.text() == "Must specify 'target' as string"
    assert len(table) == 0


@pytest.mark.parametrize(
    "target", ["", "not a url", "ftp://127.0.0.1/", "http://", "http://h:99999"]
)
async def test_target_that_is_not_a_url_is_400(
    api: TestClient, table: RouteTable, target: str
) -> None:
    resp = await api.post("/api/routes/user/a", json={"target": target}, headers=AUTH)
    assert resp.status == 400
    assert len(table) == 0


async def test_inactive_since_filters_by_last_activity(api: TestClient, table: RouteTable) -> None:
    for name in ("old", "new"):
        await api.post(
            f"/api/routes/user/{name}", json={"target": "http://127.0.0.1:1"}, headers=AUTH
        )
    route = table.get("/user/old")
    assert route is not None
    route.last_activity = time.time() - 3600
    cutoff = format_last_activity(time.time() - 60)
    for param in ("inactive_since", "inactiveSince"):
        resp = await api.get("/api/routes", params={param: cutoff}, headers=AUTH)
        assert resp.status == 200
        assert list(await resp.json()) == ["/user/old"]
    resp = await api.get("/api/routes", params={"inactive_since": "2000-01-01"}, headers=AUTH)
    assert await resp.json() == {}
    resp = await api.get("/api/routes", params={"inactive_since": ""}, headers=AUTH)
    assert len(await resp.json()) == 2  # empty means no filter, as in CHP


@pytest.mark.parametrize("bad", ["yesterday", "2024-13-01", "12:00:00Z garbage"])
async def test_bad_inactive_since_is_400(api: TestClient, bad: str) -> None:
    resp = await api.get("/api/routes", params={"inactive_since": bad}, headers=AUTH)
    assert resp.status == 400
    assert await resp.text() == f"Invalid datestamp '{bad}' must be ISO8601."


async def test_other_methods_are_405(api: TestClient) -> None:
    for method in ("PUT", "PATCH", "OPTIONS"):
        resp = await api.request(method, "/api/routes/user/a", headers=AUTH)
        assert resp.status == 405
        assert await resp.text() == "Method not supported"


async def test_routes_podgate_owns_are_listed_but_cannot_be_changed(
    api: TestClient, table: RouteTable
) -> None:
    table.add(
        "/user/dana",
        "http://127.0.0.1:7000",
        source=RouteSource.PODS,
        user="dana",
        data={"token": "pod-secret", "pod": "jupyter-dana"},
    )
    route = await (await api.get("/api/routes/user/dana", headers=AUTH)).json()
    assert route["target"] == "http://127.0.0.1:7000"
    assert route["user"] == "dana" and route["podgate_source"] == "pods"
    assert route["pod"] == "jupyter-dana"
    assert "token" not in route  # the pod's secret never leaves the process
    assert ISO_MS_Z.fullmatch(route["last_activity"])

    resp = await api.post(
        "/api/routes/user/dana/", json={"target": "http://127.0.0.1:1"}, headers=AUTH
    )
    assert resp.status == 409
    resp = await api.delete("/api/routes/user/dana", headers=AUTH)
    assert resp.status == 409
    kept = table.get("/user/dana")
    assert kept is not None and kept.target.url == "http://127.0.0.1:7000"


async def test_encoded_paths_are_decoded_once_like_request_paths(
    api: TestClient, table: RouteTable
) -> None:
    resp = await api.post(
        "/api/routes/user/a%2540b", json={"target": "http://127.0.0.1:1"}, headers=AUTH
    )
    assert resp.status == 201
    assert list(await (await api.get("/api/routes", headers=AUTH)).json()) == ["/user/a%40b"]
    assert table.longest_match("/user/a%40b/tree") is not None


async def test_paths_beside_the_api_are_not_it(api: TestClient) -> None:
    assert (await api.get("/api/routesx", headers=AUTH)).status == 404


def test_last_activity_format_matches_javascript_date_json() -> None:
    assert format_last_activity(0) == "1970-01-01T00:00:00.000Z"
    assert format_last_activity(1714564800.1239) == "2024-05-01T12:00:00.123Z"


async def test_host_routing_records_the_host_as_chp_does(aiohttp_client: MakeClient) -> None:
    table = RouteTable(host_routing=True)
    api = await serve(aiohttp_client, table, "secret-token")
    await api.post(
        "/api/routes/example.org/user/a", json={"target": "http://127.0.0.1:1"}, headers=AUTH
    )
    route = await (await api.get("/api/routes/example.org/user/a", headers=AUTH)).json()
    assert route["host"] == "example.org"


def test_api_object_is_reusable_on_any_application(table: RouteTable) -> None:
    from aiohttp import web

    app = web.Application()
    ChpRouteApi(table, "t").add_to(app)
    assert {r.canonical for r in app.router.resources()} == {"/api/routes", "/api/routes/{path}"}
