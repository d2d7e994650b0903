"""Routing and authorization at the edge: cookies, redirects, 403, hub, proxy-only mode."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web
from yarl import URL

from edge.settings import EdgeSettings
from routes import RouteSource, RouteTable

COOKIE = "podgate-session"


def user_table(**users: str) -> RouteTable:
    table = RouteTable()
    for name, url in users.items():
        table.add(f"/user/{name}", url, source=RouteSource.PODS, user=name)
    return table


def cookie(codec, user: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={codec.issue(user)}"}


def hub_app() -> web.Application:
    """A stand-in control plane that says which path it was given."""

    async def hub(request: web.Request) -> web.Response:
        return web.Response(text=f"hub:{request.path}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hub)
    return app


async def test_owner_reaches_own_server_without_session_cookie_upstream(
    make_edge, echo_upstream, client, session_codec
) -> None:
    edge = await make_edge(table=user_table(alice=echo_upstream.url))
    async with client.get(
        f"{edge.url}/user/alice/tree", headers=cookie(session_codec, "alice")
    ) as response:
        assert response.status == 200
        record = await response.json()
    assert record["path"] == "/user/alice/tree"
    assert all(k.lower() != "cookie" for k, _ in record["headers"])
    assert edge.stats.requests[("GET", 200, "user")] == 1


async def test_no_cookie_redirects_to_login_with_next(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=user_table(alice=echo_upstream.url))
    url = URL(f"{edge.url}/user/alice/tree?a=1&b=2", encoded=True)
    async with client.get(url, allow_redirects=False) as response:
        assert response.status == 302
        location = response.headers["Location"]
    assert location == "/hub/login?next=" + quote("/user/alice/tree?a=1&b=2", safe="")
    assert echo_upstream.log.requests == []


async def test_garbage_cookies_are_no_session_never_500(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=user_table(alice=echo_upstream.url))
    for value in ("", "garbage", "a.b.c", "x" * 5000, "\u00e9t\u00e9", "alice"):
        headers = {"Cookie": f"{COOKIE}={value}"}
        async with client.get(
            f"{edge.url}/user/alice/", headers=headers, allow_redirects=False
        ) as response:
            assert response.status == 302, value
            assert response.headers["Location"].startswith("/hub/login?next=")
    assert sum(edge.stats.cookie_rejections.values()) >= 5
    assert echo_upstream.log.requests == []


async def test_tampered_and_foreign_key_cookies_are_rejected(
    make_edge, echo_upstream, client, session_codec
) -> None:
    from edge.session import SessionCodec

    edge = await make_edge(table=user_table(alice=echo_upstream.url))
    good = session_codec.issue("alice")
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    foreign = SessionCodec(["someone-elses-key"], max_age_seconds=60).issue("alice")
    for value in (tampered, foreign):
        async with client.get(
            f"{edge.url}/user/alice/",
            headers={"Cookie": f"{COOKIE}={value}"},
            allow_redirects=False,
        ) as response:
            assert response.status == 302
    assert edge.stats.cookie_rejections["bad_signature"] == 2
    assert echo_upstream.log.requests == []


async def test_other_users_session_is_403(make_edge, echo_upstream, client, session_codec) -> None:
    edge = await make_edge(table=user_table(alice=echo_upstream.url))
    async with client.get(
        f"{edge.url}/user/alice/", headers=cookie(session_codec, "mallory")
    ) as response:
        assert response.status == 403
        assert "another user" in await response.text()
    assert edge.stats.cookie_rejections["wrong_user"] == 1
    assert echo_upstream.log.requests == []


async def test_admin_needs_admin_access_setting(
    make_edge, echo_upstream, client, session_codec
) -> None:
    admins = frozenset({"root"})
    closed = await make_edge(
        table=user_table(alice=echo_upstream.url), settings=EdgeSettings(admins=admins)
    )
    async with client.get(f"{closed.url}/user/alice/", headers=cookie(session_codec, "root")) as r:
        assert r.status == 403
    open_ = await make_edge(
        table=user_table(alice=echo_upstream.url),
        settings=EdgeSettings(admins=admins, admin_access=True),
    )
    async with client.get(f"{open_.url}/user/alice/", headers=cookie(session_codec, "root")) as r:
        assert r.status == 200


async def test_user_without_route_is_sent_to_spawn_or_login(
    make_edge, client, session_codec
) -> None:
    edge = await make_edge(table=RouteTable(), hub=hub_app())
    async with client.get(
        f"{edge.url}/user/bob/lab?x=1", headers=cookie(session_codec, "bob"), allow_redirects=False
    ) as response:
        assert response.status == 302
        assert response.headers["Location"] == "/hub/spawn/bob?next=" + quote(
            "/user/bob/lab?x=1", safe=""
        )
    async with client.get(f"{edge.url}/user/bob/lab", allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"].startswith("/hub/login?next=")


async def test_hub_and_unroutable_paths_go_to_control_plane(
    make_edge, echo_upstream, client
) -> None:
    table = RouteTable()
    table.add("/hub", echo_upstream.url, source=RouteSource.API)  # ignored: control owns /hub
    edge = await make_edge(table=table, hub=hub_app())
    async with client.get(f"{edge.url}/hub/login") as response:
        assert await response.text() == "hub:/hub/login"
    async with client.get(f"{edge.url}/favicon.ico") as response:
        assert await response.text() == "hub:/favicon.ico"
    assert echo_upstream.log.requests == []
    assert edge.stats.requests[("GET", 200, "hub")] == 1


async def test_proxy_only_routes_everything_by_table(make_edge, echo_upstream, client) -> None:
    table = RouteTable()
    table.add("/hub", echo_upstream.url, source=RouteSource.API)
    edge = await make_edge(table=table, settings=EdgeSettings(control_enabled=False), hub=hub_app())
    async with client.get(f"{edge.url}/hub/login") as response:
        assert (await response.json())["path"] == "/hub/login"
    async with client.get(f"{edge.url}/nowhere") as response:
        assert response.status == 404
    assert edge.stats.requests[("GET", 404, "none")] == 1


async def test_api_routes_need_no_cookie_even_with_a_user(make_edge, echo_upstream, client) -> None:
    table = RouteTable()
    table.add("/user/alice", echo_upstream.url, source=RouteSource.API, user="alice")
    edge = await make_edge(table=table)
    async with client.get(f"{edge.url}/user/alice/api") as response:
        assert response.status == 200


async def test_last_activity_is_bumped_by_traffic(
    make_edge, echo_upstream, client, session_codec
) -> None:
    table = user_table(alice=echo_upstream.url)
    route = table.get("/user/alice")
    assert route is not None
    route.last_activity = 0.0
    edge = await make_edge(table=table)
    async with client.get(f"{edge.url}/user/alice/", headers=cookie(session_codec, "alice")):
        pass
    assert route.last_activity > 1_000_000_000


async def test_open_redirect_shapes_stay_relative(make_edge, echo_upstream, raw_http) -> None:
    edge = await make_edge(table=user_table(alice=echo_upstream.url))
    raw = await raw_http(
        edge.port,
        b"GET //user/alice/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    location = next(line for line in head.split("\r\n") if line.lower().startswith("location:"))
    target = location.split(":", 1)[1].strip()
    # "//user/alice/" as a next URL would be a host; the edge sends the canonical path.
    assert target == "/hub/login?next=%2Fuser%2Falice%2F"
