"""/hub/api/users: the list (state filters, pagination, 50,000 users), one user, create, delete."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

MakePodgate = Callable[..., Awaitable[Any]]

TOKEN = "admin-token-0123456789"
SETTINGS = {"api_tokens": [{"name": "ops", "token": TOKEN, "scopes": ["admin"]}]}
PAGINATED = "application/jupyterhub-pagination+json"


async def _call(
    url: str, method: str = "GET", *, accept: str | None = None, json: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"token {TOKEN}"}
    if accept:
        headers["Accept"] = accept
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, json=json) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.read()


async def _until(check: Callable[[], bool], seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def _running(pg: Any, *users: str) -> None:
    api = pg.ops_url + "/hub/api"
    for user in users:
        status, _ = await _call(f"{api}/users/{user}", "POST")
        assert status == 201
        status, _ = await _call(f"{api}/users/{user}/server", "POST")
        assert status in (201, 202)
    await _until(lambda: all(pg.control.spawner.status(u).state == "running" for u in users))


async def test_users_list_pages_with_absolute_next_url(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    api = pg.ops_url + "/hub/api"
    status, created = await _call(
        api + "/users", "POST", json={"usernames": [f"u{i:02}" for i in range(7)]}
    )
    assert status == 201 and [u["name"] for u in created] == [f"u{i:02}" for i in range(7)]
    status, page = await _call(api + "/users?limit=3&offset=2", accept=PAGINATED)
    assert status == 200
    assert [u["name"] for u in page["items"]] == ["u02", "u03", "u04"]
    assert page["_pagination"]["total"] == 7
    following = page["_pagination"]["next"]
    assert following["offset"] == 5 and following["limit"] == 3
    assert following["url"].startswith(api + "/users?")
    status, last = await _call(following["url"], accept=PAGINATED)
    assert [u["name"] for u in last["items"]] == ["u05", "u06"]
    assert last["_pagination"]["next"] is None
    # Without the pagination type: a plain list, still one page.
    status, plain = await _call(api + "/users?limit=2")
    assert status == 200 and [u["name"] for u in plain] == ["u00", "u01"]


async def test_bad_pagination_and_state_are_400(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    api = pg.ops_url + "/hub/api"
    for query in ("limit=many", "offset=1.5", "state=sleeping"):
        status, body = await _call(f"{api}/users?{query}")
        assert status == 400 and body["message"]
    status, page = await _call(api + "/users?limit=100000", accept=PAGINATED)
    assert status == 200 and page["_pagination"]["limit"] == 200


async def test_state_filters_ready_active_inactive(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    api = pg.ops_url + "/hub/api"
    await _running(pg, "ada", "bob")
    await _call(api + "/users", "POST", json={"usernames": ["cyd", "dan"]})

    async def names(state: str) -> list[str]:
        status, page = await _call(f"{api}/users?state={state}", accept=PAGINATED)
        assert status == 200
        assert page["_pagination"]["total"] == len(page["items"])
        return [u["name"] for u in page["items"]]

    assert await names("ready") == ["ada", "bob"]
    assert await names("active") == ["ada", "bob"]
    assert await names("inactive") == ["cyd", "dan"]
    _status, page = await _call(api + "/users?state=ready", accept=PAGINATED)
    ada = page["items"][0]
    assert ada["server"] == "/user/ada/" and ada["pending"] is None
    server = ada["servers"][""]
    assert server["ready"] is True and server["url"] == "/user/ada/"
    assert server["state"]["pod_name"] and server["started"].endswith("Z")
    assert server["last_activity"].endswith("Z")  # the start, until traffic says more


async def test_the_list_stays_fast_with_50000_users(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    directory = pg.control.hub.users
    for i in range(50_000):
        directory.remember(f"user{i:05}")
    api = pg.ops_url + "/hub/api"
    await _call(api + "/users?limit=1")  # the sorted names are cached from here on
    began = time.monotonic()
    status, page = await _call(api + "/users?offset=49990&limit=200", accept=PAGINATED)
    deep_inactive = await _call(api + "/users?state=inactive&offset=40000", accept=PAGINATED)
    took = time.monotonic() - began
    assert status == 200 and page["_pagination"]["total"] == 50_000
    assert next(u["name"] for u in page["items"]) == "user49990" and len(page["items"]) == 10
    assert deep_inactive[1]["items"][0]["name"] == "user40000"
    assert took < 1.0, f"two pages over 50,000 users took {took:.2f} s"


async def test_one_user_and_404(make_podgate: MakePodgate) -> None:
    pg = await make_podgate({**SETTINGS, "auth": {"admins": ["root"]}})
    api = pg.ops_url + "/hub/api"
    status, root = await _call(api + "/users/root")
    assert status == 200
    assert root["admin"] is True and root["roles"] == ["admin"] and root["groups"] == []
    assert root["server"] is None and root["pending"] is None and root["servers"] == {}
    assert "last_activity" in root and root["last_activity"] is None
    assert "created" in root
    status, body = await _call(api + "/users/nobody")
    assert status == 404 and body["status"] == 404


async def test_create_conflicts_and_refusals(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    api = pg.ops_url + "/hub/api"
    assert (await _call(api + "/users/ada", "POST"))[0] == 201
    status, body = await _call(api + "/users/ada", "POST")
    assert status == 409 and "already exists" in body["message"]
    status, body = await _call(api + "/users", "POST", json={"usernames": ["ada"]})
    assert status == 409
    status, body = await _call(api + "/users", "POST", json={"usernames": []})
    assert status == 400
    status, body = await _call(api + "/users", "POST", json={"usernames": ["ok", "no/slash"]})
    assert status == 400 and "no/slash" in body["message"]
    status, body = await _call(api + "/users/eve", "POST", json={"admin": True})
    assert status == 400 and "configuration" in body["message"]
    status, _ = await _call(api + "/users/eve")
    assert status == 404


async def test_password_users_come_from_the_configuration(make_podgate: MakePodgate) -> None:
    from control.auth.hashes import hash_password

    users = {"ada": hash_password("pw-of-ada-123", "scrypt")}
    pg = await make_podgate({**SETTINGS, "auth": {"kind": "password", "users": users}})
    api = pg.ops_url + "/hub/api"
    status, body = await _call(api + "/users/newbie", "POST")
    assert status == 400 and body["message"] == (
        "users come from the configuration (password authenticator)"
    )
    status, _ = await _call(api + "/users/ada", "DELETE")
    assert status == 400
    status, _ = await _call(api + "/users/ada")
    assert status == 200


async def test_delete_stops_the_server_first(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    api = pg.ops_url + "/hub/api"
    await _running(pg, "ada")
    status, body = await _call(api + "/users/ada", "DELETE")
    assert status == 204, body
    assert pg.control.spawner.status("ada").state == "stopped"
    status, _ = await _call(api + "/users/ada")
    assert status == 404
    status, _ = await _call(api + "/users/ada", "DELETE")
    assert status == 404
