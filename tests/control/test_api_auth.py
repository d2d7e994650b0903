"""/hub/api callers: API tokens (token and Bearer), scopes, config errors, both ports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from control.api.scopes import expand
from control.api.tokens import ApiTokens, TokenEntry
from podgate.config import load_config
from podgate.control_plane import api_tokens
from podgate.schema import ConfigError

MakePodgate = Callable[..., Awaitable[Any]]

ADMIN_TOKEN = "admin-token-0123456789"
READER_TOKEN = "reader-token-0123456789"
CULLER_TOKEN = "culler-token-0123456789"
TOKENS = {
    "api_tokens": [
        {"name": "ops", "token": ADMIN_TOKEN, "scopes": ["admin"]},
        {"name": "reader", "token": READER_TOKEN, "scopes": ["list:users", "read:users"]},
        {
            "name": "culler",
            "token": CULLER_TOKEN,
            "scopes": ["list:users", "read:servers", "delete:servers"],
        },
    ]
}


async def _call(
    url: str, method: str = "GET", token: str | None = None, scheme: str = "token", **kw: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, **kw) as response,
    ):
        body = await response.read()
        is_json = response.content_type == "application/json"
        return response.status, (await response.json() if is_json else body)


async def test_the_version_needs_no_token_on_either_port(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(TOKENS)
    for base in (pg.public_url, pg.ops_url):
        status, body = await _call(base + "/hub/api/")
        assert status == 200
        assert body["version"] >= "1.3"  # what the idle culler checks before filtering


async def test_a_token_works_as_token_and_as_bearer_on_both_ports(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(TOKENS)
    for base in (pg.public_url, pg.ops_url):
        for scheme in ("token", "Bearer"):
            status, body = await _call(base + "/hub/api/user", token=ADMIN_TOKEN, scheme=scheme)
            assert status == 200, body
            assert body["kind"] == "service" and body["name"] == "ops" and body["admin"] is True
            assert "delete:servers" in body["scopes"]


async def test_no_token_or_a_wrong_one_is_refused(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(TOKENS)
    for token in (None, "not-a-token-at-all", ADMIN_TOKEN + "x", ""):
        status, body = await _call(pg.ops_url + "/hub/api/users", token=token)
        assert status == 403
        assert body["status"] == 403 and body["message"]
    status, _ = await _call(pg.ops_url + "/hub/api/users", token=ADMIN_TOKEN, scheme="Basic")
    assert status == 403


async def test_a_token_lacking_the_scope_gets_403_and_changes_nothing(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(TOKENS)
    api = pg.ops_url + "/hub/api"
    status, body = await _call(api + "/users/ada", "POST", READER_TOKEN)
    assert status == 403 and "admin:users" in body["message"]
    status, _ = await _call(api + "/users/ada", "POST", ADMIN_TOKEN)
    assert status == 201
    status, body = await _call(api + "/users/ada/server", "POST", READER_TOKEN)
    assert status == 403 and "start:servers" in body["message"]
    status, _ = await _call(api + "/users/ada/server", "POST", CULLER_TOKEN)
    assert status == 403
    assert pg.control.spawner.status("ada").state == "stopped"
    status, _ = await _call(api + "/users/ada", "DELETE", CULLER_TOKEN)
    assert status == 403
    status, _ = await _call(api + "/users/ada/server/progress", token=READER_TOKEN)
    assert status == 403
    # Reading is what the reader may do.
    status, body = await _call(api + "/users/ada", token=READER_TOKEN)
    assert status == 200 and body["name"] == "ada" and "servers" not in body


def test_scopes_imply_their_parts_as_jupyterhub_defines_them() -> None:
    assert {"read:servers", "start:servers", "delete:servers"} <= expand(["servers"])
    assert {"list:users", "read:users", "delete:users"} <= expand(["admin:users"])
    assert expand(["admin"]) >= expand(["admin:users", "admin:servers"])
    assert "delete:servers" not in expand(["read:servers", "list:users"])


def test_tokens_are_kept_as_digests_and_matched_exactly() -> None:
    tokens = ApiTokens([TokenEntry("a", "first-token-value", ("read:users",))])
    owner = tokens.owner("first-token-value")
    assert owner is not None and owner.name == "a" and "read:users:name" in owner.scopes
    assert tokens.owner("first-token-valu") is None
    assert tokens.owner("x" * 10_000) is None
    assert "first-token-value" not in repr(vars(tokens))


def test_an_unknown_scope_in_the_config_names_it(tmp_path: Path) -> None:
    config = tmp_path / "podgate.yaml"
    config.write_text(
        "api_tokens:\n- {name: culler, token: abcdefghijkl, scopes: [list:users, read:serverz]}\n"
    )
    with pytest.raises(ConfigError) as failure:
        load_config(config, environ={})
    assert "read:serverz" in str(failure.value) and "scopes" in str(failure.value)


def test_tokens_file_adds_tokens_and_its_errors_name_it(tmp_path: Path) -> None:
    mounted = tmp_path / "tokens.yaml"
    mounted.write_text("- {name: culler, token: from-the-secret-01, scopes: [list:users]}\n")
    config = tmp_path / "podgate.yaml"
    config.write_text(f"api_tokens_file: {mounted}\n")
    tokens = api_tokens(load_config(config, environ={}))
    owner = tokens.owner("from-the-secret-01")
    assert owner is not None and owner.name == "culler"
    mounted.write_text("- {name: culler, token: from-the-secret-01, scopes: [everything]}\n")
    with pytest.raises(ConfigError) as failure:
        api_tokens(load_config(config, environ={}))
    assert "api_tokens" in str(failure.value) and "everything" in str(failure.value)
    mounted.write_text("- {name: culler, tokn: typo}\n")
    with pytest.raises(ConfigError) as failure:
        api_tokens(load_config(config, environ={}))
    assert "api_tokens_file" in str(failure.value) and "tokn" in str(failure.value)


async def test_a_token_file_that_is_missing_stops_the_start(
    make_podgate: MakePodgate, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as failure:
        await make_podgate({"api_tokens_file": str(tmp_path / "absent.yaml")})
    assert "api_tokens_file" in str(failure.value)
