"""Provider presets: what `auth.oidc.preset` fills in that a person would otherwise look up.

Each preset gives the issuer (or GitHub's endpoints), the scopes, the claim
the user name comes from, the claim that lists groups, the name on the
sign-in button and any extra authorization parameters. Keys set in the
config win over the preset's. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from control.settings import OidcSettings

GITHUB_API = "https://api.github.com"
GITHUB_WEB = "https://github.com"
GITLAB = "https://gitlab.com"
GOOGLE = "https://accounts.google.com"
AZUREAD = "https://login.microsoftonline.com/{tenant}/v2.0"


@dataclass(frozen=True)
class ProviderProfile:
    """The effective provider settings after the preset's defaults."""

    preset: str
    display_name: str  # "Sign in with <display_name>"
    issuer: str | None  # OpenID issuer; None for GitHub (plain OAuth2)
    scopes: tuple[str, ...]
    username_claim: str
    groups_claim: str | None
    allowed_groups: frozenset[str] = frozenset()
    admin_groups: frozenset[str] = frozenset()
    authorize_params: dict[str, str] = field(default_factory=dict)
    # GitHub only: the REST API, and the web base with /login/oauth/...
    api_url: str | None = None
    web_url: str | None = None


def profile_of(s: OidcSettings) -> ProviderProfile:
    """The provider `s` describes, with the preset's defaults filled in."""
    allowed, admins = frozenset(s.allowed_groups), frozenset(s.admin_groups)
    if s.preset == "github":
        api = (s.api_url or GITHUB_API).rstrip("/")
        # GitHub Enterprise Server: the API is https://HOST/api/v3, the web https://HOST.
        web = GITHUB_WEB if api == GITHUB_API else api.removesuffix("/api/v3")
        orgs = frozenset(s.allowed_organizations)
        needs_orgs = bool(orgs or allowed or admins)
        scopes = ("read:user", "user:email", *(("read:org",) if needs_orgs else ()))
        return ProviderProfile(
            preset="github",
            display_name="GitHub",
            issuer=None,
            scopes=s.scopes or scopes,
            username_claim=s.username_claim or "login",
            groups_claim=None,
            allowed_groups=allowed | orgs,
            admin_groups=admins,
            api_url=api,
            web_url=web,
        )
    if s.preset == "google":
        params = {"hd": s.hosted_domain[0]} if len(s.hosted_domain) == 1 else {}
        return ProviderProfile(
            preset="google",
            display_name="Google",
            issuer=s.issuer or GOOGLE,
            scopes=s.scopes or ("openid", "email", "profile"),
            username_claim=s.username_claim or "email",
            groups_claim=s.groups_claim,  # Google's id_token lists no groups
            allowed_groups=allowed,
            admin_groups=admins,
            authorize_params=params,
        )
    if s.preset == "azuread":
        return ProviderProfile(
            preset="azuread",
            display_name="Microsoft",
            issuer=s.issuer or AZUREAD.format(tenant=s.tenant),
            # offline_access: Azure AD issues a refresh token only when asked for one.
            scopes=s.scopes or ("openid", "profile", "email", "offline_access"),
            username_claim=s.username_claim or "preferred_username",
            groups_claim=s.groups_claim or "groups",
            allowed_groups=allowed,
            admin_groups=admins,
        )
    if s.preset == "gitlab":
        return ProviderProfile(
            preset="gitlab",
            display_name="GitLab",
            issuer=s.issuer or (s.api_url.rstrip("/") if s.api_url else GITLAB),
            scopes=s.scopes or ("openid", "profile", "email"),
            username_claim=s.username_claim or "nickname",
            # GitLab lists group paths in `groups` (userinfo) / `groups_direct` (id_token).
            groups_claim=s.groups_claim or "groups",
            allowed_groups=allowed | frozenset(s.allowed_organizations),
            admin_groups=admins,
        )
    issuer = s.issuer or ""
    return ProviderProfile(
        preset="generic",
        display_name=urlsplit(issuer).hostname or "your identity provider",
        issuer=issuer,
        scopes=s.scopes or ("openid", "profile", "email"),
        username_claim=s.username_claim or "preferred_username",
        groups_claim=s.groups_claim or "groups",
        allowed_groups=allowed,
        admin_groups=admins,
    )
