"""The identity-provider login's small parts: the attempt cookie, sealed refresh tokens,
the client secret's three sources, and group-based access."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from control.auth.access import UserAccess
from control.auth.build import build_access, build_redirect_login, client_secret
from control.auth.oidc_state import Attempts
from control.auth.sealed import Sealer
from control.session_gate import SessionGate
from control.settings import AuthSettings, OidcSettings
from podgate.config import Config
from podgate.schema import build
from podgate.welcome import welcome_text

SECRET = "a-cookie-secret-0123456789"


def test_an_attempt_is_found_by_its_state_only_with_its_cookie() -> None:
    attempts = Attempts([SECRET])
    attempt, cookie = attempts.start("/hub/home")
    found = attempts.find([cookie], attempt.state)
    assert found is not None and found.nonce == attempt.nonce
    assert found.code_verifier == attempt.code_verifier and found.next_url == "/hub/home"
    assert 43 <= len(attempt.code_verifier) <= 128  # RFC 7636
    assert attempts.find([cookie], attempt.state + "x") is None  # another state
    assert attempts.find([], attempt.state) is None  # another browser: no cookie
    assert attempts.find([cookie[:-2] + "xx"], attempt.state) is None  # tampered
    assert Attempts(["another-secret-0123456789"]).find([cookie], attempt.state) is None


def test_an_attempt_signed_with_the_previous_secret_still_counts() -> None:
    attempt, cookie = Attempts(["old-secret-0123456789"]).start("")
    rotated = Attempts(["new-secret-0123456789", "old-secret-0123456789"])
    assert rotated.find([cookie], attempt.state) is not None


def test_an_old_attempt_has_expired() -> None:
    attempts = Attempts([SECRET], max_age_seconds=1)
    attempt, cookie = attempts.start("")
    time.sleep(2.1)  # itsdangerous counts whole seconds
    assert attempts.find([cookie], attempt.state) is None


def test_a_sealed_refresh_token_opens_only_with_the_secret() -> None:
    sealer = Sealer([SECRET])
    sealed = sealer.seal("refresh-token-value")
    assert "refresh-token-value" not in sealed
    assert sealer.open(sealed) == "refresh-token-value"
    assert Sealer(["new-secret-0123456789", SECRET]).open(sealed) == "refresh-token-value"
    assert Sealer(["other-secret-0123456789"]).open(sealed) is None
    assert sealer.open(sealed[:-4] + "AAAA") is None


def _oidc(**keys: object) -> OidcSettings:
    return OidcSettings(issuer="https://sso.example.org", client_id="lab", **keys)  # type: ignore[arg-type]


def test_the_client_secret_comes_from_the_config_a_file_or_the_environment(
    tmp_path: Path,
) -> None:
    assert client_secret(_oidc(client_secret="in-config"), {}) == "in-config"
    path = tmp_path / "client-secret"
    path.write_text("from-a-secret\n")
    assert client_secret(_oidc(client_secret_file=str(path)), {}) == "from-a-secret"
    assert client_secret(_oidc(client_secret_env="LAB_SECRET"), {"LAB_SECRET": "env"}) == "env"
    assert client_secret(_oidc(), {}) is None  # a public client (PKCE only)


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ({"client_secret_file": "/nonexistent/secret"}, "oidc.client_secret_file: cannot read"),
        ({"client_secret_env": "NOT_SET_HERE"}, "NOT_SET_HERE is not set"),
    ],
)
def test_a_missing_client_secret_names_its_key(keys: dict[str, str], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        client_secret(_oidc(**keys), {})


def test_groups_allow_and_make_admins_beside_names() -> None:
    recorded = {"ada": frozenset({"lab"}), "root": frozenset({"lab-admins"})}
    settings = AuthSettings(
        kind="oidc",
        allowed_users=["bob"],
        admins=["carol"],
        oidc=_oidc(allowed_groups=("lab",), admin_groups=("lab-admins",)),
    )
    access = build_access(settings, lambda user: recorded.get(user, frozenset()))
    assert access.is_allowed("ada") and access.is_allowed("bob") and access.is_allowed("carol")
    assert access.is_allowed("root") and not access.is_allowed("eve")
    assert access.is_admin("root") and access.is_admin("carol") and not access.is_admin("ada")
    # At sign-in the groups just read decide, not the recorded ones.
    assert not access.is_allowed("ada", frozenset({"visitors"}))
    # The session gate asks the same: a recorded group change ends the session.
    gate = SessionGate(access)
    assert gate.admits("ada", time.time())
    recorded["ada"] = frozenset({"visitors"})
    assert not gate.admits("ada", time.time())
    assert gate.admits("bob", time.time())


def test_without_any_list_everyone_the_provider_vouches_for_is_allowed() -> None:
    access = UserAccess(admin_groups=["lab-admins"], groups_of=lambda _: frozenset())
    assert access.is_allowed("anyone") and not access.is_admin("anyone")
    assert SessionGate(access).admits("anyone", time.time())


def test_the_start_banner_says_where_to_sign_in_and_who_is_admin() -> None:
    config = build(
        Config,
        {
            "auth": {
                "kind": "oidc",
                "oidc": {
                    "issuer": "https://sso.example.org/realms/lab",
                    "client_id": "lab",
                    "admin_groups": ["lab-admins"],
                },
            }
        },
    )
    login = build_redirect_login(config.auth, [SECRET], {})
    text = welcome_text(config, "http://127.0.0.1:8000", "http://127.0.0.1:8081", login)
    assert "Sign in with sso.example.org" in text
    assert "members of lab-admins (auth.oidc.admin_groups)" in text
