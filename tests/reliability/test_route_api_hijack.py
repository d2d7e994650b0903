"""A user's pod cannot take over another user's URLs through the route API.

The attack (issue 11, finding 1): code in ada's pod reaches podgate's ops
port and POSTs /api/routes/user/bob/lab with a target of its own; bob's
next request to /user/bob/lab would then go to ada's server, with bob's
traffic. The route API is closed without a token, and even with the token
no route may reach into the user servers' space while the control plane
routes it from the pod watch.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from hub_kit import Browser

PROXY_TOKEN = "route-api-token-for-the-operator"


@pytest.fixture
async def attacker() -> AsyncIterator[tuple[str, list[str]]]:
    """The attacker's own server (what ada's pod would run), recording what reaches it."""
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="attacker")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", hits
    await runner.cleanup()


async def post_route(ops: str, path: str, target: str, token: str | None) -> int:
    headers = {"Authorization": f"token {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{ops}/api/routes{path}", json={"target": target}, headers=headers) as r,
    ):
        return r.status


@pytest.mark.parametrize("token", [None, PROXY_TOKEN], ids=["no token", "operator's token"])
async def test_a_pod_cannot_route_another_users_urls_to_itself(
    make_podgate: object,
    attacker: tuple[str, list[str]],
    token: str | None,
) -> None:
    settings = {"proxy_auth_token": PROXY_TOKEN} if token else {}
    podgate = await make_podgate(settings)  # type: ignore[operator]
    target, hits = attacker
    async with Browser(podgate.public_url) as bob:
        events = await bob.start_server("bob")
        assert events[-1].get("ready"), events

        for path in ("/user/bob/lab", "/user/bob", "/user", "/", "/%75ser/bob/lab"):
            assert await post_route(podgate.ops_url, path, target, token) == 403, path

        response = await bob.get("/user/bob/lab")
        assert response.status == 200
        echoed = json.loads(await response.text())
        assert echoed["path"] == "/user/bob/lab"  # bob's own pod answered
    assert hits == []
