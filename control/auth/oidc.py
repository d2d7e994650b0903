"""Signing in with an identity provider: auth.kind oidc (and its GitHub preset).

`OidcLogin` is the redirect login of control.auth.interface: `start` makes
a sign-in attempt (control.auth.oidc_state) and the provider URL to send
the browser to; `finish` takes the provider's redirect back, checks the
attempt, lets the identity source exchange the code and say who it is
(OpenID Connect: control.auth.oidc_client; GitHub: control.auth.github),
and applies the provider-side rules (e-mail domain, Google's hosted
domain, a name that can be a user). It returns a SignedIn; whether that
user or their groups may use podgate is UserAccess's call, in the web layer.
Failures raise SignInFailed with the words the failure page shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from control.auth.oidc_client import OidcClient, Tokens
from control.auth.oidc_state import Attempt, Attempts
from control.auth.presets import ProviderProfile, profile_of
from control.auth.sealed import Sealer
from control.auth.sign_in_errors import (
    EXPIRED_ATTEMPT,
    NO_USERNAME,
    NOT_ALLOWED,
    SignInFailed,
    bad_token,
    provider_refused,
)
from control.errors import BadUserName
from control.names import normalise_username
from control.settings import OidcSettings

GROUPS_OVERAGE = (
    "Your account is in more groups than the identity provider puts in its answer "
    "(Azure AD's group overage), so your groups cannot be checked. Ask an administrator "
    "to send only the groups this service uses (a group filter on the app registration)."
)


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in, before podgate's own rules."""

    name: str  # the raw user name claim
    groups: frozenset[str]
    email: str | None = None
    email_verified: bool | None = None
    hosted_domain: str | None = None  # Google's hd claim
    groups_overage: bool = False  # Azure AD: too many groups to list in the token
    tokens: Tokens | None = None


@dataclass(frozen=True)
class SignedIn:
    """A signed-in user: the normalised name, their groups, and the tokens kept for later."""

    user: str
    groups: frozenset[str]
    next_url: str
    refresh_token: str | None = None
    id_token: str | None = None


class IdentitySource(Protocol):
    """The provider-specific half: where to send the browser, and who came back."""

    async def authorization_url(self, redirect_uri: str, attempt: Attempt) -> str: ...

    async def identify(self, code: str, redirect_uri: str, attempt: Attempt) -> Identity: ...

    async def refreshed(self, refresh_token: str) -> tuple[frozenset[str], str]:
        """The groups now, and the refresh token to keep (SignInFailed when refused)."""
        ...

    async def end_session_url(self, id_token: str | None, after: str | None) -> str | None: ...


class OidcSource:
    """An OpenID Connect provider: code + PKCE, a verified id_token, userinfo if needed."""

    def __init__(self, profile: ProviderProfile, client: OidcClient) -> None:
        self.profile = profile
        self.client = client

    async def authorization_url(self, redirect_uri: str, attempt: Attempt) -> str:
        return await self.client.authorization_url(
            redirect_uri=redirect_uri,
            scopes=self.profile.scopes,
            state=attempt.state,
            nonce=attempt.nonce,
            code_verifier=attempt.code_verifier,
            extra=self.profile.authorize_params,
        )

    async def identify(self, code: str, redirect_uri: str, attempt: Attempt) -> Identity:
        tokens = await self.client.exchange(
            code, redirect_uri=redirect_uri, code_verifier=attempt.code_verifier
        )
        if tokens.id_token is None:
            raise bad_token("the token answer has no id_token (is the openid scope granted?)")
        claims = await self.client.verify_id_token(
            tokens.id_token, nonce=attempt.nonce, access_token=tokens.access_token
        )
        claims = await self._with_userinfo(claims, tokens.access_token)
        return self._identity(claims, tokens)

    async def refreshed(self, refresh_token: str) -> tuple[frozenset[str], str]:
        tokens = await self.client.refresh(refresh_token)
        claims: dict[str, Any] = {}
        if tokens.id_token is not None:  # a refreshed id_token has no nonce (OIDC 12.2)
            claims = await self.client.verify_id_token(
                tokens.id_token, nonce=None, access_token=tokens.access_token
            )
        claims = await self._with_userinfo(claims, tokens.access_token)
        identity = self._identity(claims, tokens)
        if identity.groups_overage:
            raise SignInFailed("groups_overage", GROUPS_OVERAGE)
        return identity.groups, tokens.refresh_token or refresh_token

    async def _with_userinfo(self, claims: dict[str, Any], access_token: str) -> dict[str, Any]:
        """Claims the id_token lacks (the name or groups), from userinfo when it has them."""
        wanted = [self.profile.username_claim, self.profile.groups_claim]
        if all(c is None or c in claims for c in wanted):
            return claims
        info = await self.client.userinfo(access_token)
        if not info:
            return claims
        # OIDC 5.3.2: userinfo's sub must be the id_token's, or it is someone else's.
        if claims.get("sub") is not None and info.get("sub") != claims.get("sub"):
            raise bad_token("userinfo names another subject than the id_token")
        return {**info, **claims}

    def _identity(self, claims: Mapping[str, Any], tokens: Tokens) -> Identity:
        name = claims.get(self.profile.username_claim)
        groups_claim = self.profile.groups_claim
        overage = False
        groups: frozenset[str] = frozenset()
        if groups_claim is not None:
            groups = _groups(claims.get(groups_claim))
            names = claims.get("_claim_names")
            overage = (
                groups_claim not in claims and isinstance(names, dict) and (groups_claim in names)
            )
        verified = claims.get("email_verified")
        email = claims.get("email")
        hd = claims.get("hd")
        return Identity(
            name=name if isinstance(name, str) else "",
            groups=groups,
            email=email if isinstance(email, str) else None,
            email_verified=verified if isinstance(verified, bool) else None,
            hosted_domain=hd if isinstance(hd, str) else None,
            groups_overage=overage,
            tokens=tokens,
        )

    async def end_session_url(self, id_token: str | None, after: str | None) -> str | None:
        return await self.client.end_session_url(
            id_token_hint=id_token, post_logout_redirect_uri=after
        )


def _groups(value: object) -> frozenset[str]:
    """A groups claim as a set of names: a list of strings, or one string."""
    if isinstance(value, str):
        return frozenset([value])
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


class OidcLogin:
    """The redirect login: start an attempt, finish it, refresh groups, end the provider session."""

    login_hint: str | None = None

    def __init__(
        self,
        settings: OidcSettings,
        source: IdentitySource,
        cookie_secrets: Iterable[str],
    ) -> None:
        self.settings = settings
        self.profile = profile_of(settings)
        self.source = source
        secrets = list(cookie_secrets)
        self.attempts = Attempts(secrets)
        self.sealer = Sealer(secrets)  # refresh tokens kept in the user records

    @property
    def display_name(self) -> str:
        return self.profile.display_name

    async def authenticate(self, username: str, password: str) -> str | None:
        """No passwords here: a typed name and password never sign anyone in."""
        return None

    async def start(self, next_url: str, redirect_uri: str) -> tuple[str, str]:
        """(the provider URL to send the browser to, the attempt cookie to set)."""
        attempt, cookie = self.attempts.start(next_url)
        return await self.source.authorization_url(redirect_uri, attempt), cookie

    async def finish(
        self, query: Mapping[str, str], cookie_values: Iterable[str], redirect_uri: str
    ) -> SignedIn:
        """Check the provider's redirect back against this browser's attempt; who signed in."""
        state = query.get("state", "")
        attempt = self.attempts.find(cookie_values, state) if state else None
        if attempt is None:
            raise SignInFailed("state", EXPIRED_ATTEMPT, 400)
        try:
            identity = await self._identify(query, redirect_uri, attempt)
            user = self._admitted(identity)
        except SignInFailed as e:
            e.next_url = attempt.next_url
            raise
        tokens = identity.tokens
        return SignedIn(
            user=user,
            groups=identity.groups,
            next_url=attempt.next_url,
            refresh_token=tokens.refresh_token if tokens else None,
            id_token=tokens.id_token if tokens else None,
        )

    async def _identify(
        self, query: Mapping[str, str], redirect_uri: str, attempt: Attempt
    ) -> Identity:
        if "error" in query:  # the person declined, or the provider refused
            raise provider_refused(query["error"][:100], query.get("error_description", "")[:300])
        code = query.get("code", "")
        if not code:
            raise provider_refused("no_code", "the provider sent no authorization code")
        return await self.source.identify(code, redirect_uri, attempt)

    def _admitted(self, identity: Identity) -> str:
        """The normalised user name, once the provider-side rules hold."""
        if not identity.name:
            raise SignInFailed("no_username", NO_USERNAME)
        try:
            user = normalise_username(identity.name)
        except BadUserName as e:
            raise SignInFailed(
                "bad_username",
                f"The identity provider's user name {identity.name[:64]!r} cannot be used "
                f"here: {e}",
            ) from None
        hosted = self.settings.hosted_domain
        if hosted and identity.hosted_domain not in hosted:
            raise SignInFailed(
                "hosted_domain",
                f"{NOT_ALLOWED} (Only accounts of {', '.join(hosted)} may sign in.)",
            )
        domains = {d.lower().lstrip("@") for d in self.settings.allowed_domains}
        if domains:
            address = identity.email or (identity.name if "@" in identity.name else "")
            domain = address.rpartition("@")[2].lower()
            if identity.email_verified is False or domain not in domains:
                raise SignInFailed(
                    "domain",
                    f"{NOT_ALLOWED} (Only e-mail addresses of {', '.join(sorted(domains))} "
                    "may sign in.)",
                )
        if identity.groups_overage and (self.profile.allowed_groups or self.profile.admin_groups):
            raise SignInFailed("groups_overage", GROUPS_OVERAGE)
        return user

    async def refreshed(self, refresh_token: str) -> tuple[frozenset[str], str]:
        return await self.source.refreshed(refresh_token)

    async def end_session_url(self, id_token: str | None, after: str | None) -> str | None:
        return await self.source.end_session_url(id_token, after)
