"""Everything the hub's handlers share, built once by the wiring and stored on the app."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from control.api.tokens import ApiTokens
from control.auth import Authenticator, LoginThrottle, UserAccess
from control.auth.known_browsers import KnownBrowsers
from control.auth.oidc import OidcLogin
from control.csrf import CsrfTokens
from control.progress import SpawnProgress
from control.record_store import UserRecordStore
from control.session_gate import SessionGate
from control.settings import Profile
from control.singleuser_hub import SingleuserHub
from control.spawner import Spawner
from control.user_tokens import UserTokens
from control.users import UserDirectory
from control.web.identity import (
    CookieSettings,
    IPNetwork,
    SessionCookies,
    client_address,
    session_user,
)


class ActivityView(Protocol):
    """When a user's server last saw traffic (epoch seconds), across replicas; None: never."""

    def last_activity(self, user: str) -> float | None: ...


# Metrics hook for sign-ins: (outcome "success" | "failure" | "throttled", seconds).
LoginObserver = Callable[[str, float], None]


@dataclass
class Hub:
    sessions: SessionCookies
    cookies: CookieSettings
    authenticator: Authenticator
    access: UserAccess
    throttle: LoginThrottle
    csrf: CsrfTokens
    known_browsers: KnownBrowsers
    spawner: Spawner
    progress: SpawnProgress
    profiles: tuple[Profile, ...] = ()
    # The edge's trusted proxies: behind them the browser's address is in X-Forwarded-For
    # (else every client of an ingress would share one address in the login throttle).
    trusted_proxies: tuple[IPNetwork, ...] = ()
    users: UserDirectory = field(default_factory=UserDirectory)
    activity: ActivityView | None = None
    on_login: LoginObserver | None = None
    # Tokens accepted by /hub/api (control.api), as digests.
    api_tokens: ApiTokens = field(default_factory=ApiTokens)
    # The per-user records every replica shares (sign-outs, who exists), and the rule
    # a session must pass on every request (the edge asks the same gate).
    records: UserRecordStore | None = None
    gate: SessionGate | None = None
    # The edge's admin_access: may admins open other users' servers? (for links only;
    # the edge decides access itself)
    admin_access: bool = False
    # The hub side of jupyterhub-singleuser (spawner.hub_api); None: no such pods.
    singleuser: SingleuserHub | None = None
    # Personal API tokens, as every replica sees them (None: not wired, none accepted).
    user_tokens: UserTokens | None = None
    clock: Callable[[], float] = field(default=time.time)
    # auth.kind oidc: sign-in at the identity provider instead of a password form.
    redirect_login: OidcLogin | None = None

    def user(self, request: web.Request) -> str | None:
        """The signed-in user, if the session cookie verifies and the user is still allowed
        and has not been signed out (everywhere) since the cookie was issued."""
        admits = self.gate.admits if self.gate is not None else None
        user = session_user(request, self.sessions, self.cookies, admits)
        if user is None or not self.access.is_allowed(user):
            return None
        return user

    def client_address(self, request: web.Request) -> str:
        """Where the browser is, as far as the trusted proxies in front say."""
        return client_address(request, self.trusted_proxies)

    def named_servers(self, user: str) -> list[str]:
        """`user`'s named servers: those with a pod (or a start here) and those their record
        remembers while stopped, sorted."""
        record = self.records.get(user) if self.records is not None else None
        remembered = record.servers if record is not None else ()
        return sorted({*self.spawner.servers_of(user), *remembered})

    async def remember_server(self, user: str, server: str) -> None:
        """Record a new named server at every replica (KubeError if the record is not written)."""
        record = self.records.get(user) if self.records is not None else None
        if self.records is not None and (record is None or server not in record.servers):
            await self.records.add_server(user, server)

    def may_act_for(self, viewer: str, owner: str) -> bool:
        """Whether `viewer` may see, start or stop `owner`'s server."""
        return viewer == owner or self.access.is_admin(viewer)


HUB_KEY: web.AppKey[Hub] = web.AppKey("podgate_hub", Hub)


def hub_of(request: web.Request) -> Hub:
    return request.app[HUB_KEY]
