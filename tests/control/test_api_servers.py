"""/hub/api/users/{name}/server: start (user_options), stop, the spawn limit, progress by token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

MakePodgate = Callable[..., Awaitable[Any]]

TOKEN = "admin-token-0123456789"
WATCHER = "watcher-token-0123456789"
TOKENS = [
    {"name": "ops", "token": TOKEN, "scopes": ["admin"]},
    {"name": "watcher", "token": WATCHER, "scopes": ["read:servers"]},
]
PROFILES = {
    "spawner": {
        "profiles": [
            {"slug": "small", "display_name": "Small", "default": True},
            {"slug": "large", "display_name": "Large", "image": "kubesim/echo:large"},
        ]
    }
}


async def _call(
    url: str, method: str = "GET", *, token: str = TOKEN, json_body: Any = None
) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    headers = {"Authorization": f"token {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, json=json_body) as response,
    ):
        body = await response.read()
        if response.content_type == "application/json":
            return response.status, json.loads(body), response.headers
        return response.status, body, response.headers


async def _until(check: Callable[[], bool], seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def _made(pg: Any, *users: str) -> str:
    api = pg.ops_url + "/hub/api"
    for user in users:
        status, _, _ = await _call(f"{api}/users/{user}", "POST")
        assert status == 201
    return api


async def test_start_then_already_running_then_stop(make_podgate: MakePodgate) -> None:
    pg = await make_podgate({"api_tokens": TOKENS})
    api = await _made(pg, "ada")
    status, body, _headers = await _call(api + "/users/ada/server", "POST")
    assert status in (201, 202) and body == b""
    await _until(lambda: pg.control.spawner.status("ada").state == "running")
    status, body, _ = await _call(api + "/users/ada/server", "POST")
    assert status == 400 and "already running" in body["message"]
    status, user, _ = await _call(api + "/users/ada")
    assert user["servers"][""]["ready"] is True
    status, body, _ = await _call(api + "/users/ada/server", "DELETE")
    assert status in (202, 204) and body == b""
    await _until(lambda: pg.control.spawner.status("ada").state == "stopped")
    status, user, _ = await _call(api + "/users/ada")
    assert user["server"] is None and user["servers"] == {}
    # Stopping what is stopped: done already.
    status, _, _ = await _call(api + "/users/ada/server", "DELETE")
    assert status == 204


async def test_a_fast_start_answers_201(make_podgate: MakePodgate) -> None:
    pg = await make_podgate({"api_tokens": TOKENS})
    api = await _made(pg, "ada")
    statuses = []
    for _ in range(3):  # echo pods are ready in milliseconds: 201 comes within a try or two
        status, _, _ = await _call(api + "/users/ada/server", "POST")
        statuses.append(status)
        if status == 201:
            break
        await _until(lambda: pg.control.spawner.status("ada").state == "running")
        await _call(api + "/users/ada/server", "DELETE")
        await _until(lambda: pg.control.spawner.status("ada").state == "stopped")
    assert 201 in statuses, statuses


async def test_user_options_choose_a_profile_and_bad_ones_are_400(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate({"api_tokens": TOKENS, **PROFILES})
    api = await _made(pg, "ada", "bob")
    for options, words in (
        ({"profile": "huge"}, "huge"),
        ({"cpu": 64}, "cpu"),
        (["large"], "object"),
    ):
        status, body, _ = await _call(api + "/users/ada/server", "POST", json_body=options)
        assert status == 400 and words in body["message"], body
    assert pg.control.spawner.status("ada").state == "stopped"
    status, _, _ = await _call(api + "/users/bob/server", "POST", json_body={"profile": "large"})
    assert status in (201, 202)
    await _until(lambda: pg.control.spawner.status("bob").state == "running")
    _, bob, _ = await _call(api + "/users/bob")
    assert bob["servers"][""]["user_options"] == {"profile": "large"}


async def test_a_start_for_an_unknown_user_is_404(make_podgate: MakePodgate) -> None:
    pg = await make_podgate({"api_tokens": TOKENS})
    status, _body, _ = await _call(pg.ops_url + "/hub/api/users/ghost/server", "POST")
    assert status == 404
    assert pg.control.spawner.status("ghost").state == "stopped"


async def test_spawn_limit_is_429_with_retry_after_and_pending_is_202(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate({"api_tokens": TOKENS, "spawner": {"concurrent_spawn_limit": 1}})
    api = await _made(pg, "ada", "bob")
    pg.cluster.kubelet.set_paused(True)  # ada's start stays under way
    try:
        status, _, _ = await _call(api + "/users/ada/server", "POST")
        assert status == 202
        status, _, _ = await _call(api + "/users/ada/server", "POST")
        assert status == 202  # already starting: JupyterHub answers 202 again
        status, body, headers = await _call(api + "/users/bob/server", "POST")
        assert status == 429
        assert int(headers["Retry-After"]) >= 1
        assert body["status"] == 429 and "starting" in body["message"]
        _, ada, _ = await _call(api + "/users/ada")
        assert ada["pending"] == "spawn" and ada["servers"][""]["pending"] == "spawn"
        assert ada["servers"][""]["ready"] is False
    finally:
        pg.cluster.kubelet.set_paused(False)
    await _until(lambda: pg.control.spawner.status("ada").state == "running")


async def test_progress_follows_with_a_token(make_podgate: MakePodgate) -> None:
    pg = await make_podgate({"api_tokens": TOKENS})
    api = await _made(pg, "ada")
    await _call(api + "/users/ada/server", "POST")
    events = []
    headers = {"Authorization": f"Bearer {WATCHER}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            api + "/users/ada/server/progress",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=15),
        ) as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        async for line in response.content:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["ready"] is True and events[-1]["url"] == "/user/ada/"
    # The watcher may read, not stop.
    status, _, _ = await _call(api + "/users/ada/server", "DELETE", token=WATCHER)
    assert status == 403
    assert pg.control.spawner.status("ada").state == "running"
