"""Personal API tokens: /hub/api/users/<name>/tokens, their scopes, expiry and revocation.

Tokens are made by the signed-in user (cookie + XSRF) and used with
`Authorization: token …` or `Bearer …`; they hold exactly the scopes asked
for, never more than their user; the user's record ConfigMap keeps only a
digest; a second replica sees every token and every revocation. On both
API servers (both_servers).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hub_kit import Browser, xsrf_of
from kube_servers import RealServer

from control import names
from kubesim.cluster import SimCluster

pytestmark = pytest.mark.both_servers

ADMIN = "admin-token-0123456789"
SETTINGS = {"api_tokens": [{"name": "ops", "token": ADMIN, "scopes": ["admin"]}]}


async def _call(
    base: str,
    path: str,
    method: str = "GET",
    *,
    token: str,
    body: Any = None,
    scheme: str = "token",
) -> tuple[int, Any]:
    headers = {"Authorization": f"{scheme} {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, base + path, headers=headers, json=body) as response,
    ):
        raw = await response.read()
        if response.content_type == "application/json":
            return response.status, json.loads(raw)
        return response.status, raw


async def _signed_in(pg: Any, user: str) -> tuple[Browser, str]:
    browser = Browser(pg.public_url)
    response = await browser.login(user, next_url="/hub/home")
    assert response.status == 200, await response.text()
    return browser, xsrf_of(await response.text())


async def _make(browser: Browser, xsrf: str, user: str, body: Any) -> tuple[int, Any]:
    async with browser.session.post(
        browser.url(f"/hub/api/users/{user}/tokens"), json=body, headers={"X-XSRFToken": xsrf}
    ) as response:
        return response.status, await response.json()


async def test_a_user_makes_uses_and_revokes_a_token(make_podgate: Any) -> None:
    pg = await make_podgate(SETTINGS)
    kube = pg.control.kube
    browser, xsrf = await _signed_in(pg, "tia")
    try:
        status, made = await _make(
            browser, xsrf, "tia", {"note": "my laptop", "expires_in": 3600, "scopes": ["servers"]}
        )
        assert status == 201, made
        token = made.pop("token")
        assert made["user"] == "tia" and made["kind"] == "api_token" and made["id"]
        assert made["note"] == "my laptop" and made["scopes"] == ["servers"]
        assert made["expires_at"] and made["created"]
        api = pg.public_url + "/hub/api"
        # Who am I, with exactly the scopes it holds, filtered to tia.
        for scheme in ("token", "Bearer"):
            status, me = await _call(api, "/user", token=token, scheme=scheme)
            assert status == 200 and me["name"] == "tia", me
            assert me["token_id"] == made["id"]
            assert "start:servers!user=tia" in me["scopes"]
            assert not any(s.startswith("read:users!") for s in me["scopes"]), me["scopes"]
        # It starts and stops tia's server, and nobody else's.
        status, body = await _call(api, "/users/tia/server", "POST", token=token)
        assert status in (201, 202), body
        status, body = await _call(api, "/users/ops-victim/server", "POST", token=token)
        assert status == 403, body
        status, body = await _call(api, "/users", token=token)
        assert status == 403, body  # list:users was not asked for
        # Listed (without the secret), read by id.
        status, listed = await _call(api, "/users/tia/tokens", token=ADMIN)
        assert status == 200 and [t["id"] for t in listed["api_tokens"]] == [made["id"]]
        assert "token" not in listed["api_tokens"][0]
        status, one = await _call(api, f"/users/tia/tokens/{made['id']}", token=token)
        assert status == 403  # reading tokens was not asked for either
        status, one = await _call(api, f"/users/tia/tokens/{made['id']}", token=ADMIN)
        assert status == 200 and one == made
        # Only a digest is stored: in the user's record, never in a pod.
        record = await kube.get("configmaps", "podgate", names.record_name("tia"))
        stored = json.dumps(record)
        assert token not in stored and made["id"] in stored
        pods = await kube.list("pods", "podgate")
        assert token not in json.dumps(pods.items)
        # Revoked: refused at once, with the answer every unknown token gets.
        async with browser.session.delete(
            browser.url(f"/hub/api/users/tia/tokens/{made['id']}"),
            headers={"X-XSRFToken": xsrf},
        ) as response:
            assert response.status == 204
        status, body = await _call(api, "/user", token=token)
        assert status == 403 and body["message"] == "Invalid or unknown API token", body
        status, body = await _call(api, f"/users/tia/tokens/{made['id']}", token=ADMIN)
        assert status == 404
    finally:
        await browser.close()


async def test_scopes_beyond_the_user_and_bad_requests_are_refused(make_podgate: Any) -> None:
    pg = await make_podgate(SETTINGS)
    browser, xsrf = await _signed_in(pg, "uma")
    try:
        for body, status, words in [
            ({"scopes": ["admin"]}, 403, "not held by User uma"),
            ({"scopes": ["list:users", "admin:users"]}, 403, "not held by User uma"),
            ({"scopes": ["no-such-scope"]}, 400, "Unknown scope"),
            ({"scopes": "servers"}, 400, "list of scope names"),
            ({"expires_in": "soon"}, 400, "expires_in"),
            ({"expires_in": -5}, 400, "expires_in"),
            ({"note": "x" * 201}, 400, "note"),
            ({"roles": ["admin"]}, 400, "roles"),
            (["not", "a", "dict"], 400, "JSON dict"),
        ]:
            got, answer = await _make(browser, xsrf, "uma", body)
            assert got == status and words in answer["message"], (body, answer)
        # Another user's tokens are not hers to make or read.
        got, answer = await _make(browser, xsrf, "vic", {"scopes": ["servers"]})
        assert got == 403, answer
        # No XSRF token: a cookie alone makes nothing.
        async with browser.session.post(
            browser.url("/hub/api/users/uma/tokens"), json={}
        ) as response:
            assert response.status == 403
        # With no scopes asked for, a token holds what she holds (JupyterHub's default).
        got, made = await _make(browser, xsrf, "uma", {})
        assert got == 201 and "tokens" in made["scopes"] and "servers" in made["scopes"]
    finally:
        await browser.close()


async def test_an_expired_token_is_refused_in_words(make_podgate: Any) -> None:
    pg = await make_podgate(SETTINGS)
    api = pg.public_url + "/hub/api"
    status, _ = await _call(api, "/users/wes", "POST", token=ADMIN)
    assert status == 201
    status, made = await _call(
        api,
        "/users/wes/tokens",
        "POST",
        token=ADMIN,
        body={"expires_in": 1, "scopes": ["read:users"]},
    )
    assert status == 201, made
    status, me = await _call(api, "/user", token=made["token"])
    assert status == 200 and me["name"] == "wes"
    await asyncio.sleep(1.2)
    status, body = await _call(api, "/user", token=made["token"])
    assert status == 403 and "expired" in body["message"], body


async def test_a_token_made_at_one_replica_works_and_ends_at_the_other(
    make_podgate: Any, cluster: SimCluster | RealServer, tmp_path: Path
) -> None:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace="podgate")
    settings = {**SETTINGS, "cluster": {"kind": "kube", "kubeconfig": str(kubeconfig)}}
    first, second = await make_podgate(settings), await make_podgate(settings)
    one, two = first.public_url + "/hub/api", second.public_url + "/hub/api"
    status, _ = await _call(one, "/users/xia", "POST", token=ADMIN)
    assert status in (201, 409)
    status, made = await _call(one, "/users/xia/tokens", "POST", token=ADMIN, body={})
    assert status == 201, made

    async def answer_at(api: str) -> int:
        return (await _call(api, "/user", token=made["token"]))[0]

    async def until(api: str, wanted: int) -> None:
        for _ in range(150):  # 15 s at most
            if await answer_at(api) == wanted:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{api} still does not answer {wanted}")

    await until(two, 200)
    status, _ = await _call(two, f"/users/xia/tokens/{made['id']}", "DELETE", token=ADMIN)
    assert status == 204
    assert await answer_at(two) == 403
    await until(one, 403)


async def test_a_token_with_access_opens_its_users_server_at_the_edge(make_podgate: Any) -> None:
    pg = await make_podgate(SETTINGS)
    api = pg.public_url + "/hub/api"
    for user in ("yan", "zoe"):
        status, _ = await _call(api, f"/users/{user}", "POST", token=ADMIN)
        assert status == 201
        status, _ = await _call(api, f"/users/{user}/server", "POST", token=ADMIN)
        assert status in (201, 202)
    tokens = {}
    for scopes in (["access:servers"], ["read:users"]):
        status, made = await _call(
            api, "/users/yan/tokens", "POST", token=ADMIN, body={"scopes": scopes}
        )
        assert status == 201, made
        tokens[scopes[0]] = made["token"]
    spawner = pg.control.spawner
    for _ in range(300):
        if all(spawner.status(u).state == "running" for u in ("yan", "zoe")):
            break
        await asyncio.sleep(0.05)

    async def through_edge(path: str, scheme: str, token: str) -> aiohttp.ClientResponse:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                pg.public_url + path,
                headers={"Authorization": f"{scheme} {token}"},
                allow_redirects=False,
            ) as response,
        ):
            await response.read()
            return response

    for scheme in ("token", "Bearer"):
        response = await through_edge("/user/yan/api/status", scheme, tokens["access:servers"])
        assert response.status == 200
    # The pod saw its own token, never the personal one.
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            pg.public_url + "/user/yan/echo",
            headers={"Authorization": f"token {tokens['access:servers']}"},
        ) as response,
    ):
        echoed = await response.json()
    assert tokens["access:servers"] not in json.dumps(echoed["headers"])
    # Another user's server: refused; a token without access:servers: sent to sign in.
    response = await through_edge("/user/zoe/api/status", "token", tokens["access:servers"])
    assert response.status == 403
    response = await through_edge("/user/yan/api/status", "token", tokens["read:users"])
    assert response.status == 302 and response.headers["Location"].startswith("/hub/login")
    response = await through_edge("/user/yan/api/status", "token", "not-a-token-at-all")
    assert response.status == 302


async def test_the_token_page_makes_lists_and_revokes(make_podgate: Any) -> None:
    pg = await make_podgate(SETTINGS)
    browser, _ = await _signed_in(pg, "ana")
    try:
        home = await (await browser.get("/hub/home")).text()
        assert 'href="/hub/token"' in home
        page = await browser.get("/hub/token")
        text = await page.text()
        assert page.status == 200 and page.headers["Cache-Control"] == "no-store"
        assert 'value="servers"' in text and 'value="admin"' not in text
        form = aiohttp.FormData()
        for key, value in [
            ("_xsrf", xsrf_of(text)),
            ("note", "notebook sync"),
            ("expires_in", "3600"),
            ("scopes", "read:users"),
            ("scopes", "access:servers"),
        ]:
            form.add_field(key, value)
        async with browser.session.post(browser.url("/hub/token"), data=form) as made:
            shown = await made.text()
            assert made.status == 201, shown
        secret = re.search(r'<code id="new-token">([0-9a-f]+)</code>', shown)
        assert secret is not None
        status, me = await _call(pg.public_url + "/hub/api", "/user", token=secret.group(1))
        assert status == 200 and me["name"] == "ana"
        assert sorted(me["scopes"]) == sorted(
            f"{s}!user=ana"
            for s in ("access:servers", "read:users", "read:users:name", "read:users:activity")
        )
        listed = await (await browser.get("/hub/token")).text()
        row = re.search(r'<tr data-token="(a[0-9a-f]+)">.*?</tr>', listed)
        assert row is not None and "notebook sync" in row.group(0)
        assert secret.group(1) not in listed  # the secret is shown once only
        # A scope she does not hold, an expiry not offered, no scope: refused in words.
        for fields, status, words in [
            ([("expires_in", "3600"), ("scopes", "admin")], 403, "not held by User ana"),
            ([("expires_in", "17"), ("scopes", "servers")], 400, "expiry from the list"),
            ([("expires_in", "")], 400, "at least one scope"),
        ]:
            bad = aiohttp.FormData()
            bad.add_field("_xsrf", xsrf_of(listed))
            for key, value in fields:
                bad.add_field(key, value)
            async with browser.session.post(browser.url("/hub/token"), data=bad) as refused:
                assert refused.status == status and words in await refused.text(), fields
        revoked = await browser.post(
            f"/hub/token/{row.group(1)}/revoke", {"_xsrf": xsrf_of(listed)}, allow_redirects=False
        )
        assert revoked.status == 303
        assert row.group(1) not in await (await browser.get("/hub/token")).text()
        status, _ = await _call(pg.public_url + "/hub/api", "/user", token=secret.group(1))
        assert status == 403
        forged = await browser.post("/hub/token", {"_xsrf": "forged", "expires_in": ""})
        assert forged.status == 403
    finally:
        await browser.close()
