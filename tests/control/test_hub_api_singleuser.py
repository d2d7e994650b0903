"""The hub side of jupyterhub-singleuser, through a running podgate: /hub/api/user, OAuth, activity.

podgate runs for real (edge, control plane, embedded kubesim) with
`spawner.hub_api` on; the pods are kubesim's echo servers, and the test
plays the part of the jupyterhub-singleuser server inside them: it reads
the pod's JUPYTERHUB_API_TOKEN from the pod spec and makes the calls that
server makes (tests/integration/test_singleuser.py runs the real one).
Every refusal must be a clear 4xx and log nothing at ERROR.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from hub_kit import Browser, until

from control import names
from control.activity import ACTIVITY_ANNOTATION, parse_activity
from control.oauth_codes import SPENT_KEY
from control.oauth_grants import pkce_challenge
from control.singleuser_tokens import pod_hub_token

MakePodgate = Callable[..., Awaitable[Any]]

ADMIN = "admin-token-0123456789"
SETTINGS = {
    "api_tokens": [{"name": "ops", "token": ADMIN, "scopes": ["admin"]}],
    # The echo pods never call it: the test is the server here.
    "spawner": {"hub_api": True, "hub_url": "http://127.0.0.1:9"},
}
VERIFIER = "v" * 43 + "-verifier_ok"
CALLBACK = "/user/{}/oauth_callback"


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A refused request is expected traffic: nothing at ERROR or above."""
    caplog.set_level(logging.INFO)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def _call(
    url: str,
    method: str = "GET",
    *,
    token: str | None = None,
    body: Any = None,
    form: dict[str, str] | None = None,
) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"token {token}"} if token is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, url, headers=headers, json=body, data=form, allow_redirects=False
        ) as response,
    ):
        raw = await response.read()
        if response.content_type == "application/json":
            return response.status, json.loads(raw), response.headers
        return response.status, raw.decode(), response.headers


async def _server_token(pg: Any, user: str) -> str:
    """Start `user`'s server through the API and read its JUPYTERHUB_API_TOKEN from the pod."""
    status, body, _ = await _call(f"{pg.ops_url}/hub/api/users/{user}", "POST", token=ADMIN)
    assert status in (201, 409), body
    status, body, _ = await _call(f"{pg.ops_url}/hub/api/users/{user}/server", "POST", token=ADMIN)
    assert status in (201, 202), body
    pods = pg.control.pods
    name = names.pod_name(user)
    await until(lambda: name in pods.cache and pod_hub_token(pods.cache[name]) is not None)
    token = pod_hub_token(pods.cache[name])
    assert token is not None
    return token


def _authorize_path(
    user: str, *, state: str = "s1", challenge: str | None = None, **extra: str
) -> str:
    query = {
        "client_id": f"jupyterhub-user-{user}",
        "redirect_uri": CALLBACK.format(user),
        "response_type": "code",
        "state": state,
    }
    if challenge is not None:
        query.update(code_challenge=challenge, code_challenge_method="S256")
    query.update(extra)
    return "/hub/api/oauth2/authorize?" + urlencode(query)


async def _code(browser: Browser, user: str, **kwargs: Any) -> str:
    """The code the hub sends `browser` back to `user`'s server with (state checked)."""
    response = await browser.get(_authorize_path(user, **kwargs), allow_redirects=False)
    assert response.status == 302, await response.text()
    location = urlsplit(response.headers["Location"])
    assert location.path == CALLBACK.format(user)
    params = parse_qs(location.query)
    assert params["state"] == [kwargs.get("state", "s1")]
    return params["code"][0]


def _exchange(user: str, code: str, secret: str, **extra: str) -> dict[str, str]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": f"jupyterhub-user-{user}",
        "client_secret": secret,
        "redirect_uri": CALLBACK.format(user),
    }
    form.update(extra)
    return form


async def test_version_header_is_one_singleuser_accepts(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    status, body, headers = await _call(f"{pg.public_url}/hub/api/")
    assert status == 200
    # jupyterhub-singleuser warns unless the major version matches its own (6.x).
    assert headers["X-JupyterHub-Version"] == body["version"]
    assert headers["X-JupyterHub-Version"].split(".")[0] == "6"
    # The server asks at JUPYTERHUB_API_URL as it is, with no slash.
    status, body, headers = await _call(f"{pg.public_url}/hub/api")
    assert status == 200 and headers["X-JupyterHub-Version"] == body["version"]


async def test_server_token_identifies_its_owner_with_the_server_role(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(SETTINGS)
    token = await _server_token(pg, "alice")
    api = f"{pg.public_url}/hub/api"
    status, model, _ = await _call(f"{api}/user", token=token)
    assert status == 200, model
    assert model["kind"] == "user" and model["name"] == "alice"
    assert "access:servers!server=alice/" in model["scopes"]
    assert "users:activity!user=alice" in model["scopes"]
    assert "read:users:name!user=alice" in model["scopes"]
    # Nothing about anyone else, and nothing unfiltered.
    assert all(scope.endswith(("=alice", "=alice/")) for scope in model["scopes"]), model
    # The server's token is no API token: the rest of the API refuses it.
    status, body, _ = await _call(f"{api}/users", token=token)
    assert status == 403, body
    status, body, _ = await _call(f"{api}/users/alice/server", "DELETE", token=token)
    assert status == 403, body


async def test_unknown_token_is_a_403_json_error(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    await _server_token(pg, "alice")
    for token in ("not-a-token-of-anyone", "pga1.e30.AAAA", "x" * 5000):
        status, body, _ = await _call(f"{pg.public_url}/hub/api/user", token=token)
        # 403 is what jupyterhub-singleuser reads as "no such user" (anything else: a 500 there).
        assert status == 403, body
        assert body["status"] == 403 and body["message"]


async def test_oauth_flow_gives_the_owner_a_token_for_their_server(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(SETTINGS)
    secret = await _server_token(pg, "alice")
    api = f"{pg.public_url}/hub/api"
    async with Browser(pg.public_url) as browser:
        # Not signed in: off to the login page, and back to the same authorize URL.
        first = await browser.get(_authorize_path("alice"), allow_redirects=False)
        assert first.status == 302
        assert first.headers["Location"].startswith("/hub/login?next=%2Fhub%2Fapi%2Foauth2")
        await browser.login("alice", allow_redirects=False)
        code = await _code(browser, "alice", challenge=pkce_challenge(VERIFIER))
    status, answer, headers = await _call(
        f"{api}/oauth2/token", "POST", form=_exchange("alice", code, secret, code_verifier=VERIFIER)
    )
    assert status == 200, answer
    assert answer["token_type"] == "Bearer" and answer["expires_in"] > 0
    assert headers["Cache-Control"] == "no-store"
    status, model, _ = await _call(f"{api}/user", token=answer["access_token"])
    assert status == 200, model
    assert model["name"] == "alice"
    assert "access:servers!server=alice/" in model["scopes"]
    assert "users:activity!user=alice" not in model["scopes"]  # a browser's token posts nothing
    # The access token is no API token either.
    status, _, _ = await _call(f"{api}/users/alice", token=answer["access_token"])
    assert status == 403
    # The spent code is written where every replica sees it: alice's record.
    record = await pg.control.kube.get("configmaps", "podgate", names.record_name("alice"))
    assert len(json.loads(record["data"][SPENT_KEY])) == 1


async def test_replayed_code_is_refused(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    secret = await _server_token(pg, "alice")
    async with Browser(pg.public_url) as browser:
        await browser.login("alice", allow_redirects=False)
        code = await _code(browser, "alice")
    url = f"{pg.public_url}/hub/api/oauth2/token"
    # Two at once, then once more: exactly one exchange succeeds.
    answers = await asyncio.gather(
        *(_call(url, "POST", form=_exchange("alice", code, secret)) for _ in range(3))
    )
    assert sorted(status for status, _, _ in answers) == [200, 400, 400], answers
    status, body, _ = await _call(url, "POST", form=_exchange("alice", code, secret))
    assert status == 400
    assert body["error"] == "invalid_grant" and "already used" in body["error_description"]


async def test_a_spent_code_is_refused_at_another_replica(
    make_podgate: MakePodgate, cluster: Any, tmp_path: Any
) -> None:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace="podgate")
    settings = {**SETTINGS, "cluster": {"kind": "kube", "kubeconfig": str(kubeconfig)}}
    first, second = await make_podgate(settings), await make_podgate(settings)
    secret = await _server_token(first, "alice")
    await until(lambda: names.pod_name("alice") in second.control.pods.cache)
    async with Browser(first.public_url) as browser:
        await browser.login("alice", allow_redirects=False)
        code = await _code(browser, "alice")
    form = _exchange("alice", code, secret)
    status, body, _ = await _call(f"{first.public_url}/hub/api/oauth2/token", "POST", form=form)
    assert status == 200, body
    access = body["access_token"]
    spent = second.control.singleuser.codes
    await until(lambda: len(spent._records.get("alice", ("", {}))[1]) == 1)
    status, body, _ = await _call(f"{second.public_url}/hub/api/oauth2/token", "POST", form=form)
    assert status == 400, body
    assert "already used" in body["error_description"]
    # The token the first replica issued is good at the second (signed, nothing stored).
    status, model, _ = await _call(f"{second.public_url}/hub/api/user", token=access)
    assert status == 200 and model["name"] == "alice", model


async def test_hostile_exchanges_are_clear_4xx(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    alice_secret = await _server_token(pg, "alice")
    bob_secret = await _server_token(pg, "bob")
    url = f"{pg.public_url}/hub/api/oauth2/token"
    async with Browser(pg.public_url) as browser:
        await browser.login("alice", allow_redirects=False)
        codes = [
            await _code(browser, "alice", challenge=pkce_challenge(VERIFIER)) for _ in range(6)
        ]
    tampered = codes[0][:-3] + ("AAA" if not codes[0].endswith("AAA") else "BBB")
    v = {"code_verifier": VERIFIER}
    cases = [
        # (form, status, error, words in the description)
        (_exchange("alice", codes[0], "wrong-secret", **v), 401, "invalid_client", "secret"),
        # bob's server cannot redeem a code for alice's, even with its own real token
        (_exchange("alice", codes[0], bob_secret, **v), 401, "invalid_client", "secret"),
        (_exchange("bob", codes[0], bob_secret, **v), 400, "invalid_grant", "another client"),
        (_exchange("alice", tampered, alice_secret, **v), 400, "invalid_grant", "not issued"),
        (_exchange("alice", codes[1], alice_secret), 400, "invalid_grant", "is required"),
        (
            _exchange("alice", codes[2], alice_secret, code_verifier="w" * 43),
            400,
            "invalid_grant",
            "does not match",
        ),
        (
            _exchange("alice", codes[3], alice_secret, **v, redirect_uri="/user/alice/x"),
            400,
            "invalid_grant",
            "redirect_uri",
        ),
        (
            _exchange("alice", codes[4], alice_secret, **v, grant_type="password"),
            400,
            "unsupported_grant_type",
            "authorization_code",
        ),
        (_exchange("nobody", codes[4], alice_secret, **v), 401, "invalid_client", "unknown"),
    ]
    for form, status, error, words in cases:
        got, body, _ = await _call(url, "POST", form=form)
        assert (got, body["error"]) == (status, error), (form, body)
        assert words in body["error_description"], body
    # A refused exchange does not spend the code: the right one still works once.
    form = _exchange("alice", codes[5], alice_secret, code_verifier=VERIFIER)
    assert (await _call(url, "POST", form=form))[0] == 200


async def test_an_expired_code_is_refused(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    secret = await _server_token(pg, "alice")
    async with Browser(pg.public_url) as browser:
        await browser.login("alice", allow_redirects=False)
        code = await _code(browser, "alice")
    singleuser = pg.control.singleuser
    later = time.time() + singleuser.grants.code_seconds + 1
    singleuser.clock = lambda: later
    status, body, _ = await _call(
        f"{pg.public_url}/hub/api/oauth2/token", "POST", form=_exchange("alice", code, secret)
    )
    assert status == 400 and body["error"] == "invalid_grant", body
    assert "expired" in body["error_description"]


async def test_authorize_refuses_other_users_and_foreign_redirects(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(SETTINGS)
    await _server_token(pg, "alice")
    async with Browser(pg.public_url) as bob:
        await bob.login("bob", allow_redirects=False)
        refused = await bob.get(_authorize_path("alice"), allow_redirects=False)
        assert refused.status == 403
        assert refused.content_type == "text/html"
        assert "may not use the server of alice" in await refused.text()
        assert "Location" not in refused.headers
    async with Browser(pg.public_url) as alice:
        await alice.login("alice", allow_redirects=False)
        bad = [
            (_authorize_path("alice", redirect_uri="https://evil.example/cb"), "redirect_uri"),
            (_authorize_path("alice", redirect_uri=CALLBACK.format("alice") + "/"), "redirect_uri"),
            (_authorize_path("alice", redirect_uri="/user/bob/oauth_callback"), "redirect_uri"),
            (_authorize_path("alice", client_id="jupyterhub-user-nobody"), "Unknown OAuth client"),
            (_authorize_path("alice", response_type="token"), "response_type"),
            (_authorize_path("alice", challenge="c" * 43, code_challenge_method="plain"), "S256"),
            (_authorize_path("alice", challenge="short"), "malformed"),
        ]  # fmt: skip
        for path, words in bad:
            response = await alice.get(path, allow_redirects=False)
            assert response.status == 400, path
            assert "Location" not in response.headers  # never sent anywhere unchecked
            assert words in await response.text(), path


async def test_sign_out_everywhere_ends_the_access_token(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    secret = await _server_token(pg, "alice")
    async with Browser(pg.public_url) as browser:
        await browser.login("alice", allow_redirects=False)
        code = await _code(browser, "alice")
    api = f"{pg.public_url}/hub/api"
    _, answer, _ = await _call(f"{api}/oauth2/token", "POST", form=_exchange("alice", code, secret))
    access = answer["access_token"]
    assert (await _call(f"{api}/user", token=access))[0] == 200
    await asyncio.sleep(1.1)  # the sign-out's not-before is the next whole second
    status, _, _ = await _call(f"{pg.ops_url}/hub/api/users/alice/sessions", "DELETE", token=ADMIN)
    assert status == 204
    status, body, _ = await _call(f"{api}/user", token=access)
    assert status == 403, body


async def test_activity_from_the_server_feeds_the_activity_record(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(SETTINGS)
    alice = await _server_token(pg, "alice")
    bob = await _server_token(pg, "bob")
    url = f"{pg.public_url}/hub/api/users/alice/activity"
    when = "2030-01-01T00:00:00.000Z"  # the future counts as now
    before = time.time()
    body = {"servers": {"": {"last_activity": when}}, "last_activity": when}
    status, answer, _ = await _call(url, "POST", token=alice, body=body)
    assert status == 200, answer
    pod = await pg.control.kube.get("pods", "podgate", names.pod_name("alice"))
    recorded = parse_activity(pod["metadata"]["annotations"][ACTIVITY_ANNOTATION])
    assert recorded is not None and before - 1 <= recorded <= time.time() + 1
    # The idle culler reads it from the user model.
    status, model, _ = await _call(f"{pg.ops_url}/hub/api/users/alice", token=ADMIN)
    assert parse_activity(model["servers"][""]["last_activity"]) == pytest.approx(recorded, abs=1)
    refusals = [
        (bob, body, 403),  # another server's token
        ("not-a-token", body, 403),
        (alice, {"servers": {"gpu": {"last_activity": when}}}, 400),
        (alice, {"last_activity": "yesterday"}, 400),
        (alice, ["not", "an", "object"], 400),
        (alice, {}, 400),
    ]
    for token, payload, expected in refusals:
        status, answer, _ = await _call(url, "POST", token=token, body=payload)
        assert status == expected, (payload, answer)
        assert answer["message"], answer


async def test_hub_api_off_leaves_pods_as_they_were(make_podgate: MakePodgate) -> None:
    pg = await make_podgate({"api_tokens": SETTINGS["api_tokens"]})
    status, body, _ = await _call(f"{pg.ops_url}/hub/api/users/carol", "POST", token=ADMIN)
    status, body, _ = await _call(f"{pg.ops_url}/hub/api/users/carol/server", "POST", token=ADMIN)
    assert status in (201, 202), body
    pods = pg.control.pods
    await until(lambda: names.pod_name("carol") in pods.cache)
    env = {v["name"] for v in pods.cache[names.pod_name("carol")]["spec"]["containers"][0]["env"]}
    assert "PODGATE_POD_TOKEN" in env and "JUPYTER_TOKEN" in env
    assert not any(name.startswith("JUPYTERHUB_") and name not in (
        "JUPYTERHUB_USER", "JUPYTERHUB_SERVICE_PREFIX") for name in env), env  # fmt: skip
    async with Browser(pg.public_url) as browser:
        await browser.login("carol", allow_redirects=False)
        response = await browser.get(_authorize_path("carol"), allow_redirects=False)
        assert response.status == 400  # no hub-API server: no OAuth client


@pytest.mark.parametrize("admin_access", [True, False])
async def test_admins_pass_only_with_admin_access(
    make_podgate: MakePodgate, admin_access: bool
) -> None:
    pg = await make_podgate(
        {**SETTINGS, "auth": {"admins": ["root"]}, "edge": {"admin_access": admin_access}}
    )
    secret = await _server_token(pg, "alice")
    async with Browser(pg.public_url) as root:
        await root.login("root", allow_redirects=False)
        response = await root.get(_authorize_path("alice"), allow_redirects=False)
        if not admin_access:
            assert response.status == 403
            return
        assert response.status == 302
        code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    api = f"{pg.public_url}/hub/api"
    _, answer, _ = await _call(f"{api}/oauth2/token", "POST", form=_exchange("alice", code, secret))
    status, model, _ = await _call(f"{api}/user", token=answer["access_token"])
    # The admin is themselves, with access to alice's server only.
    assert status == 200 and model["name"] == "root", model
    assert "access:servers!server=alice/" in model["scopes"]
    assert "read:users:name!user=root" in model["scopes"]
