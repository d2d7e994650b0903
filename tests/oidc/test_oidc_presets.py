"""The presets: what each fills in, and each provider's quirk, against the real provider.

GitHub (plain OAuth2, the user and organisations from its REST API) runs
through oidc-provider's real authorization and token endpoints at GitHub's
paths, with provider.mjs answering GitHub's API for the token it issued
(the only GitHub-shaped part). Google's hosted domain, GitLab's nickname and
group paths and Azure AD's tenant run against the real provider with those
presets; Azure AD's group overage is shown on the claims it sends.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hub_kit import Browser
from provider_kit import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    TestProvider,
    free_port,
    start_provider,
    walk_to_callback,
)

from control.auth.oidc import GROUPS_OVERAGE, Identity, OidcLogin, OidcSource
from control.auth.oidc_client import OidcClient, Tokens
from control.auth.presets import profile_of
from control.auth.sign_in_errors import SignInFailed
from control.settings import OidcSettings


def account(claims: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"password": PASSWORD, "claims": claims, **more}


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


# -- what the presets fill in ------------------------------------------------------


def test_generic_needs_its_issuer_and_reads_preferred_username_and_groups() -> None:
    profile = profile_of(OidcSettings(issuer="https://sso.example.org/realms/lab", client_id="x"))
    assert profile.issuer == "https://sso.example.org/realms/lab"
    assert profile.display_name == "sso.example.org"
    assert profile.scopes == ("openid", "profile", "email")
    assert (profile.username_claim, profile.groups_claim) == ("preferred_username", "groups")


def test_github_is_oauth2_with_orgs_as_groups_and_enterprise_urls() -> None:
    public = profile_of(
        OidcSettings(preset="github", client_id="x", allowed_organizations=("lab",))
    )
    assert public.issuer is None and public.display_name == "GitHub"
    assert public.api_url == "https://api.github.com" and public.web_url == "https://github.com"
    assert public.scopes == ("read:user", "user:email", "read:org")
    assert public.allowed_groups == frozenset({"lab"})
    enterprise = profile_of(
        OidcSettings(preset="github", client_id="x", api_url="https://git.example.org/api/v3")
    )
    assert enterprise.web_url == "https://git.example.org"
    assert "read:org" not in enterprise.scopes  # no org rules: no org access asked for


def test_google_asks_for_the_hosted_domain_and_signs_in_by_email() -> None:
    profile = profile_of(
        OidcSettings(preset="google", client_id="x", hosted_domain=("example.org",))
    )
    assert profile.issuer == "https://accounts.google.com"
    assert profile.authorize_params == {"hd": "example.org"}
    assert profile.username_claim == "email" and profile.groups_claim is None
    # One domain may be given as a plain string, as OAuthenticator takes it.
    one = OidcSettings(preset="google", client_id="x", hosted_domain="example.org")  # type: ignore[arg-type]
    assert one.hosted_domain == ("example.org",)


def test_azuread_builds_the_tenant_issuer_and_asks_for_a_refresh_token() -> None:
    profile = profile_of(OidcSettings(preset="azuread", client_id="x", tenant="contoso.example"))
    assert profile.issuer == "https://login.microsoftonline.com/contoso.example/v2.0"
    assert "offline_access" in profile.scopes and profile.groups_claim == "groups"
    assert profile.display_name == "Microsoft"


def test_gitlab_defaults_to_gitlab_com_or_the_self_hosted_url() -> None:
    assert profile_of(OidcSettings(preset="gitlab", client_id="x")).issuer == "https://gitlab.com"
    own = profile_of(
        OidcSettings(
            preset="gitlab",
            client_id="x",
            api_url="https://git.example.org",
            allowed_organizations=("lab/team",),
        )
    )
    assert own.issuer == "https://git.example.org"
    assert own.username_claim == "nickname" and own.allowed_groups == frozenset({"lab/team"})


def test_config_keys_win_over_the_preset() -> None:
    profile = profile_of(
        OidcSettings(
            preset="gitlab",
            client_id="x",
            username_claim="email",
            groups_claim="groups_direct",
            scopes=("openid",),
        )
    )
    assert (profile.username_claim, profile.groups_claim, profile.scopes) == (
        "email",
        "groups_direct",
        ("openid",),
    )


def test_azuread_group_overage_is_refused_in_words() -> None:
    settings = OidcSettings(
        preset="azuread", client_id="x", tenant="t", allowed_groups=("0c1d-lab",)
    )
    profile = profile_of(settings)
    source = OidcSource(profile, OidcClient(profile.issuer or "", "x", None))
    # What Azure AD sends instead of `groups` when a user is in too many of them.
    identity = source._identity(
        {
            "sub": "s",
            "preferred_username": "ada@contoso.example",
            "_claim_names": {"groups": "src1"},
            "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/v1.0/x"}},
        },
        Tokens("at", None, None),
    )
    assert identity.groups_overage and not identity.groups
    login = OidcLogin(settings, source, ["a-cookie-secret-0123456789"])
    with pytest.raises(SignInFailed) as caught:
        login._admitted(identity)
    assert caught.value.message == GROUPS_OVERAGE


# -- against the real provider --------------------------------------------------------


@pytest.fixture
async def world(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    port = free_port()
    provider = await start_provider(
        tmp_path / "provider",
        redirect_uris=[f"http://127.0.0.1:{port}/hub/oauth_callback"],
        users=request.param["users"],
        github=request.param.get("github", False),
    )
    try:
        yield {"provider": provider, "port": port}
    finally:
        await provider.stop()


async def podgate_with(make_podgate: Any, world: dict[str, Any], oidc: dict[str, Any]) -> Any:
    return await make_podgate(
        {
            "listen": f"127.0.0.1:{world['port']}",
            "auth": {
                "kind": "oidc",
                "oidc": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **oidc},
            },
        }
    )


async def sign_in(world: dict[str, Any], pg: Any, login: str) -> tuple[Browser, Any, str]:
    browser = Browser(pg.public_url)
    start = await browser.get("/hub/oauth_login?next=/hub/home", allow_redirects=False)
    location = start.headers["Location"]
    callback = f"http://127.0.0.1:{world['port']}/hub/oauth_callback"
    url = await walk_to_callback(browser.session, location, login, callback_prefix=callback)
    landed = await browser.session.get(url, allow_redirects=False)
    await landed.read()
    return browser, landed, location


GITHUB_USERS = {
    "octo": account(
        {},
        github={"login": "Octo", "orgs": ["lab"], "teams": [["lab", "admins"]]},
    ),
    "mona": account({}, github={"login": "mona", "orgs": ["lab"], "teams": []}),
    "stranger": account({}, github={"login": "stranger", "orgs": ["elsewhere"]}),
}


@pytest.mark.parametrize("world", [{"users": GITHUB_USERS, "github": True}], indirect=True)
async def test_github_signs_in_by_login_with_orgs_and_teams(
    make_podgate: Any, world: dict[str, Any]
) -> None:
    provider: TestProvider = world["provider"]
    pg = await podgate_with(
        make_podgate,
        world,
        {
            "preset": "github",
            "api_url": f"{provider.issuer}/api/v3",
            "allowed_organizations": ["lab"],
            "admin_groups": ["lab:admins"],
        },
    )
    browser, landed, location = await sign_in(world, pg, "octo")
    async with browser:
        assert location.startswith(f"{provider.issuer}/login/oauth/authorize?")
        query = parse_qs(urlsplit(location).query)
        assert query["scope"] == ["read:user user:email read:org"] and "nonce" not in query
        assert landed.status == 302, await landed.text()
        home = await browser.get("/hub/home")
        assert "octo" in await home.text()  # GitHub's "Octo", normalised
        assert (await browser.get("/hub/admin", allow_redirects=False)).status == 200
    browser, landed, _ = await sign_in(world, pg, "mona")
    async with browser:
        assert landed.status == 302
        assert (await browser.get("/hub/admin", allow_redirects=False)).status == 403
    browser, landed, _ = await sign_in(world, pg, "stranger")
    async with browser:
        assert landed.status == 403
        assert "may not use this service" in await landed.text()


GOOGLE_USERS = {
    "ada": account({"email": "Ada@example.org", "email_verified": True, "hd": "example.org"}),
    "eve": account({"email": "eve@gmail.example", "email_verified": True}),
}


@pytest.mark.parametrize("world", [{"users": GOOGLE_USERS}], indirect=True)
async def test_google_admits_only_its_hosted_domain(
    make_podgate: Any, world: dict[str, Any]
) -> None:
    provider: TestProvider = world["provider"]
    pg = await podgate_with(
        make_podgate,
        world,
        {"preset": "google", "issuer": provider.issuer, "hosted_domain": ["example.org"]},
    )
    browser, landed, location = await sign_in(world, pg, "ada")
    async with browser:
        assert parse_qs(urlsplit(location).query)["hd"] == ["example.org"]
        assert landed.status == 302, await landed.text()
        assert "ada@example.org" in await (await browser.get("/hub/home")).text()
    browser, landed, _ = await sign_in(world, pg, "eve")
    async with browser:
        assert landed.status == 403
        assert "Only accounts of example.org may sign in" in await landed.text()


GITLAB_USERS = {
    "ada": account({"nickname": "ada", "groups": ["lab/notebooks", "lab"]}),
    "bob": account({"nickname": "bob", "groups": ["other"]}),
}


@pytest.mark.parametrize("world", [{"users": GITLAB_USERS}], indirect=True)
async def test_gitlab_signs_in_by_nickname_with_group_paths(
    make_podgate: Any, world: dict[str, Any]
) -> None:
    provider: TestProvider = world["provider"]
    pg = await podgate_with(
        make_podgate,
        world,
        {
            "preset": "gitlab",
            "issuer": provider.issuer,
            "scopes": ["openid", "profile", "groups"],
            "allowed_organizations": ["lab/notebooks"],
        },
    )
    browser, landed, _ = await sign_in(world, pg, "ada")
    async with browser:
        assert landed.status == 302, await landed.text()
    browser, landed, _ = await sign_in(world, pg, "bob")
    async with browser:
        assert landed.status == 403


AZURE_USERS = {
    "ada": account({"preferred_username": "ada@contoso.example", "groups": ["0c1d-lab"]}),
}


@pytest.mark.parametrize("world", [{"users": AZURE_USERS}], indirect=True)
async def test_azuread_reads_the_groups_claim_as_object_ids(
    make_podgate: Any, world: dict[str, Any]
) -> None:
    provider: TestProvider = world["provider"]
    pg = await podgate_with(
        make_podgate,
        world,
        {
            "preset": "azuread",
            "tenant": "contoso.example",
            "issuer": provider.issuer,  # the test provider stands where the tenant would
            "scopes": ["openid", "profile", "groups", "offline_access"],
            "admin_groups": ["0c1d-lab"],
        },
    )
    browser, landed, _ = await sign_in(world, pg, "ada")
    async with browser:
        assert landed.status == 302, await landed.text()
        assert (await browser.get("/hub/admin", allow_redirects=False)).status == 200


async def test_allowed_domains_check_the_email_domain() -> None:
    settings = OidcSettings(
        issuer="https://sso.example.org", client_id="x", allowed_domains=("example.org",)
    )
    profile = profile_of(settings)
    login = OidcLogin(
        settings, OidcSource(profile, OidcClient(profile.issuer or "", "x", None)), ["s" * 20]
    )
    assert login._admitted(Identity("ada", frozenset(), email="ada@example.org")) == "ada"
    for refused in (
        Identity("eve", frozenset(), email="eve@elsewhere.example"),
        Identity("eve", frozenset(), email="eve@example.org", email_verified=False),
        Identity("eve", frozenset()),
    ):
        with pytest.raises(SignInFailed) as caught:
            login._admitted(refused)
        assert "Only e-mail addresses of example.org" in caught.value.message
