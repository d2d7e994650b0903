"""Building the login pieces from AuthSettings: the authenticator, UserAccess and LoginThrottle.

All checking happens here, at start: bad user names, malformed hashes and
an unreadable users_file raise ValueError naming what is wrong (the config
loader adds the "auth:" section). Reads users_file once; never reads the
environment and never prints: the wiring shows a generated dummy password.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from control.auth.access import UserAccess
from control.auth.dummy import DummyAuthenticator
from control.auth.interface import Authenticator
from control.auth.password import PasswordAuthenticator, read_users_file
from control.auth.throttle import LoginThrottle
from control.settings import AuthSettings


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
    raise ValueError(f"kind: unknown authenticator {settings.kind!r} (dummy or password)")


def build_access(settings: AuthSettings) -> UserAccess:
    """Allowed and admin users from `settings`."""
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
