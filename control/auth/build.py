"""Building the login pieces from AuthSettings: the authenticator, UserAccess and LoginThrottle.

All checking happens here, at start: bad user names, malformed hashes and
an unreadable users_file raise ValueError naming what is wrong (the config
loader adds the "auth:" section). Reads users_file once; never reads the
environment and never prints: the wiring shows a generated dummy password.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from control.auth.access import GroupsOf, UserAccess
from control.auth.dummy import DummyAuthenticator
from control.auth.github import GitHubSource
from control.auth.interface import Authenticator
from control.auth.oidc import IdentitySource, OidcLogin, OidcSource
from control.auth.oidc_client import OidcClient
from control.auth.password import PasswordAuthenticator, read_users_file
from control.auth.presets import profile_of
from control.auth.throttle import LoginThrottle
from control.settings import AuthSettings, OidcSettings


def build_authenticator(settings: AuthSettings) -> Authenticator:
    """The authenticator `settings.kind` names.

    dummy without a password gets a random one: read it from the returned
    DummyAuthenticator's `shared_password` to show it at start.
    """
    if settings.kind == "dummy":
        if settings.password:
            return DummyAuthenticator(settings.password)
        return DummyAuthenticator(secrets.token_urlsafe(12), generated=True)
    if settings.kind == "password":
        users = dict(settings.users)
        if settings.users_file:
            for name, hashed in read_users_file(settings.users_file).items():
                if name in users:
                    raise ValueError(f"users_file: user {name!r} is also in users")
                users[name] = hashed
        return PasswordAuthenticator(users)
    if settings.kind == "oidc":
        raise ValueError("kind: oidc signs in at the provider (build_redirect_login)")
    raise ValueError(f"kind: unknown authenticator {settings.kind!r} (dummy or password)")


def build_redirect_login(
    settings: AuthSettings, cookie_secrets: Sequence[str], environ: Mapping[str, str]
) -> OidcLogin:
    """The identity-provider login of kind oidc; the client secret is read now.

    `environ` is where client_secret_env is looked up (the wiring passes the
    process environment); client_secret_file is read once, like users_file.
    """
    oidc = settings.oidc
    if settings.kind != "oidc" or oidc is None:
        raise ValueError("kind: a redirect login needs kind oidc and an oidc section")
    secret = client_secret(oidc, environ)
    profile = profile_of(oidc)
    source: IdentitySource
    if profile.preset == "github":
        source = GitHubSource(profile, oidc.client_id or "", secret or "")
    else:
        client = OidcClient(profile.issuer or "", oidc.client_id or "", secret)
        source = OidcSource(profile, client)
    return OidcLogin(oidc, source, cookie_secrets)


def client_secret(oidc: OidcSettings, environ: Mapping[str, str]) -> str | None:
    """The client secret from the config, its file, or its environment variable."""
    if oidc.client_secret_file:
        try:
            text = Path(oidc.client_secret_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(
                f"oidc.client_secret_file: cannot read {oidc.client_secret_file}: {e}"
            ) from None
        if not text:
            raise ValueError(f"oidc.client_secret_file: {oidc.client_secret_file} is empty")
        return text
    if oidc.client_secret_env:
        value = environ.get(oidc.client_secret_env, "").strip()
        if not value:
            raise ValueError(
                f"oidc.client_secret_env: the environment variable {oidc.client_secret_env} "
                "is not set"
            )
        return value
    return oidc.client_secret


def build_access(settings: AuthSettings, groups_of: GroupsOf | None = None) -> UserAccess:
    """Allowed and admin users (and, with an identity provider, groups) from `settings`.

    `groups_of`: where a user's current groups are looked up (the user records).
    """
    if settings.kind == "oidc" and settings.oidc is not None:
        profile = profile_of(settings.oidc)
        return UserAccess(
            settings.allowed_users,
            settings.admins,
            allowed_groups=profile.allowed_groups,
            admin_groups=profile.admin_groups,
            groups_of=groups_of,
        )
    return UserAccess(settings.allowed_users, settings.admins)


def build_throttle(
    settings: AuthSettings, *, clock: Callable[[], float] = time.monotonic
) -> LoginThrottle:
    """The failed-login throttle with the settings' counts and window."""
    return LoginThrottle(
        settings.free_failures,
        settings.failure_window_seconds,
        settings.max_delay_seconds,
        clock=clock,
    )
