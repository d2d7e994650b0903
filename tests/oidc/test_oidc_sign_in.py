"""Signing in to a real podgate at a real OpenID Provider (npm's oidc-provider), as a browser does.

Each test starts the provider on loopback and a whole podgate (edge, hub,
embedded kubesim) whose auth.kind is oidc, then walks the provider's own
login and consent pages with a cookie-keeping client. The hostile cases
each end on a page that says in words what went wrong, and podgate logs
nothing at ERROR.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from hub_kit import Browser
from provider_kit import (
    CLIENT_ID,
    TestProvider,
    free_port,
    oidc_settings,
    start_provider,
    user,
    walk_to_callback,
)

from kubesim.cluster import SimCluster

MakePodgate = Callable[..., Awaitable[Any]]

USERS = {
    "ada": user("Ada", ["lab", "staff"]),
    "bob": user("bob", ["visitors"]),
    "root": user("root", ["lab-admins"]),
}


@dataclass
class Setup:
    provider: TestProvider
    port: int
    make_podgate: MakePodgate

    @property
    def callback(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub/oauth_callback"

    async def podgate(self, port: int | None = None, **oidc: Any) -> Any:
        return await self.make_podgate(oidc_settings(self.provider, port or self.port, **oidc))


@pytest.fixture
async def setup(tmp_path: Path, make_podgate: MakePodgate) -> AsyncIterator[Setup]:
    port = free_port()
    provider = await start_provider(
        tmp_path / "provider",
        redirect_uris=[f"http://127.0.0.1:{port}/hub/oauth_callback"],
        post_logout_redirect_uris=[f"http://127.0.0.1:{port}/hub/logout"],
        users=dict(USERS),
    )
    try:
        yield Setup(provider, port, make_podgate)
    finally:
        await provider.stop()


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def _start(browser: Browser) -> str:
    """Press the login page's button: the provider URL podgate sends the browser to."""
    page = await (await browser.get("/hub/login")).text()
    assert 'id="sign-in"' in page and 'name="password"' not in page
    response = await browser.get("/hub/oauth_login", allow_redirects=False)
    assert response.status == 302, await response.text()
    return response.headers["Location"]


async def _callback_url(setup: Setup, browser: Browser, login: str) -> str:
    location = await _start(browser)
    return await walk_to_callback(browser.session, location, login, callback_prefix=setup.callback)


async def _page(response: aiohttp.ClientResponse) -> str:
    return await response.text()


async def test_signing_in_lands_in_the_users_running_server(setup: Setup) -> None:
    pg = await setup.podgate()
    async with Browser(pg.public_url) as browser:
        url = await _callback_url(setup, browser, "ada")
        response = await browser.session.get(url, allow_redirects=False)
        assert response.status == 302, await response.text()
        # No next: the user's server, started on the way (its progress page).
        assert response.headers["Location"].startswith("/hub/spawn-pending/ada")
        events = await browser.progress("ada", seconds=20)
        assert events[-1].get("ready") is True, events
        served = await browser.get("/user/ada/echo", allow_redirects=False)
        assert served.status == 200
        home = await browser.get("/hub/home")
        assert "ada" in await home.text()


async def test_the_login_page_offers_one_button_and_keeps_next(setup: Setup) -> None:
    pg = await setup.podgate()
    async with Browser(pg.public_url) as browser:
        page = await (await browser.get("/hub/login?next=/hub/home")).text()
        assert "Sign in with 127.0.0.1" in page
        assert 'href="/hub/oauth_login?next=/hub/home"' in page
        assert 'name="password"' not in page and 'name="username"' not in page
        location = await browser.get("/hub/oauth_login?next=/hub/home", allow_redirects=False)
        url = await walk_to_callback(
            browser.session, location.headers["Location"], "ada", callback_prefix=setup.callback
        )
        landed = await browser.session.get(url, allow_redirects=False)
        assert landed.headers["Location"] == "/hub/home"


async def test_the_request_carries_pkce_nonce_and_state(setup: Setup) -> None:
    pg = await setup.podgate()
    async with Browser(pg.public_url) as browser:
        query = parse_qs(urlsplit(await _start(browser)).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert len(query["nonce"][0]) >= 20 and len(query["state"][0]) >= 20
    assert query["redirect_uri"] == [setup.callback]
    assert query["client_id"] == [CLIENT_ID]


async def test_admin_group_makes_an_admin_and_other_groups_are_refused(setup: Setup) -> None:
    pg = await setup.podgate()
    async with Browser(pg.public_url) as browser:
        url = await _callback_url(setup, browser, "root")
        await browser.session.get(url)
        admin = await browser.get("/hub/admin", allow_redirects=False)
        assert admin.status == 200
    async with Browser(pg.public_url) as browser:
        url = await _callback_url(setup, browser, "ada")
        await browser.session.get(url)
        assert (await browser.get("/hub/admin", allow_redirects=False)).status == 403
    async with Browser(pg.public_url) as browser:
        url = await _callback_url(setup, browser, "bob")
        refused = await browser.session.get(url, allow_redirects=False)
        page = await refused.text()
        assert refused.status == 403
        assert "may not use this service" in page and "Try again" in page
        assert (await browser.get("/hub/home", allow_redirects=False)).status == 302


async def test_allowed_users_sign_in_beside_groups(setup: Setup) -> None:
    pg = await setup.make_podgate(
        {
            **oidc_settings(setup.provider, setup.port),
            "auth": {
                **oidc_settings(setup.provider, setup.port)["auth"],
                "allowed_users": ["bob"],
            },
        }
    )
    async with Browser(pg.public_url) as browser:
        url = await _callback_url(setup, browser, "bob")
        response = await browser.session.get(url, allow_redirects=False)
        assert response.status == 302, await response.text()


async def test_a_tampered_state_is_refused(setup: Setup) -> None:
    pg = await setup.podgate()
    async with Browser(pg.public_url) as browser:
        url = await _callback_url(setup, browser, "ada")
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        query["state"] = query["state"][:-2] + ("AA" if query["state"][-2:] != "AA" else "BB")
        tampered = f"{setup.callback}?{urlencode(query)}"
        refused = await browser.session.get(tampered, allow_redirects=False)
        page = await refused.text()
        assert refused.status == 400
        assert "expired or was already used" in page and 'id="try-again"' in page
        assert (await browser.get("/hub/home", allow_redirects=False)).status == 302


async def test_a_replayed_callback_is_refused(setup: Setup) -> None:
    pg = await setup.podgate()
    async with Browser(pg.public_url) as browser:
        url = await _callback_url(setup, browser, "ada")
        first = await browser.session.get(url, allow_redirects=False)
        assert first.status == 302
        # The attempt cookie went with the first callback: the same URL again is refused.
        again = await browser.session.get(url, allow_redirects=False)
        assert again.status == 400
        assert "expired or was already used" in await again.text()
    async with Browser(pg.public_url) as other:  # another browser has no attempt at all
        refused = await other.session.get(url, allow_redirects=False)
        assert refused.status == 400


async def test_a_code_used_twice_is_refused_by_the_provider(setup: Setup) -> None:
    pg = await setup.podgate()
    async with Browser(pg.public_url) as browser:
        url = await _callback_url(setup, browser, "ada")
        cookie = next(c for c in browser.session.cookie_jar if c.key == "podgate-oauth-state")
        kept = cookie.value
        first = await browser.session.get(url, allow_redirects=False)
        assert first.status == 302
    # A thief who copied both the callback URL and the attempt cookie: the code is spent.
    async with Browser(pg.public_url) as thief:
        headers = {"Cookie": f"podgate-oauth-state={kept}"}
        refused = await thief.session.get(url, headers=headers, allow_redirects=False)
        page = await refused.text()
        assert refused.status == 403
        assert "refused this sign-in" in page and "invalid_grant" in page
        assert "podgate-session" not in {c.key for c in thief.session.cookie_jar}


async def test_declining_at_the_provider_says_so(setup: Setup) -> None:
    pg = await setup.podgate()
    async with Browser(pg.public_url) as browser:
        started = await browser.get("/hub/oauth_login?next=/hub/home", allow_redirects=False)
        location = started.headers["Location"]
        state = parse_qs(urlsplit(location).query)["state"][0]
        error = {"error": "access_denied", "error_description": "the user said no", "state": state}
        refused = await browser.session.get(f"{setup.callback}?{urlencode(error)}")
        page = await refused.text()
        assert refused.status == 403
        assert "access_denied" in page and "the user said no" in page
        # "Try again" starts over towards where the attempt was going.
        assert 'href="/hub/oauth_login?next=/hub/home"' in page


async def test_a_provider_that_is_down_gets_a_clear_page(setup: Setup) -> None:
    pg = await setup.podgate()
    await setup.provider.stop()
    async with Browser(pg.public_url) as browser:
        response = await browser.get("/hub/oauth_login", allow_redirects=False)
        page = await response.text()
    assert response.status == 502
    assert "cannot be reached" in page and 'id="try-again"' in page


async def test_a_slow_provider_times_out_with_a_clear_page(setup: Setup) -> None:
    pg = await setup.podgate()
    pg.control.hub.redirect_login.source.client.timeout = 1.0
    setup.provider.pause()
    try:
        async with Browser(pg.public_url) as browser:
            response = await browser.get("/hub/oauth_login", allow_redirects=False)
            page = await response.text()
    finally:
        setup.provider.resume()
    assert response.status == 504
    assert "did not answer in time" in page


@pytest.fixture
async def shared_cluster(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """A kubesim both replicas reach as a real cluster (kind kube, one kubeconfig)."""
    cluster = SimCluster(namespaces=("default", "podgate"), kubelet="sim")
    await cluster.start()
    try:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace="podgate")
        yield {"cluster": {"kind": "kube", "kubeconfig": str(kubeconfig)}}
    finally:
        await cluster.stop()


async def test_start_at_one_replica_and_come_back_to_the_other(
    setup: Setup, shared_cluster: dict[str, Any]
) -> None:
    # The provider sends everyone back to the second replica's address (setup.port).
    back = {"redirect_url": setup.callback}
    second = await setup.make_podgate(
        {**oidc_settings(setup.provider, setup.port, **back), **shared_cluster}
    )
    first = await setup.make_podgate(
        {**oidc_settings(setup.provider, free_port(), **back), **shared_cluster}
    )
    async with Browser(first.public_url) as browser:
        url = await _callback_url(setup, browser, "ada")
        assert url.startswith(f"{second.public_url}/hub/oauth_callback")
        landed = await browser.session.get(url, allow_redirects=False)
        assert landed.status == 302, await landed.text()
        # Signed in at both: the session is the replicas' shared one.
        assert (await browser.get("/hub/home", allow_redirects=False)).status == 200
        home_at_first = await browser.session.get(
            f"{first.public_url}/hub/home", allow_redirects=False
        )
        assert home_at_first.status == 200


async def test_a_restart_mid_sign_in_does_not_lose_the_attempt(setup: Setup) -> None:
    pg = await setup.podgate()
    async with Browser(pg.public_url) as browser:
        url = await _callback_url(setup, browser, "ada")
        await pg.stop()
        restarted = await setup.podgate()
        assert restarted.public_url == pg.public_url
        landed = await browser.session.get(url, allow_redirects=False)
        assert landed.status == 302, await landed.text()
        assert (await browser.get("/hub/home", allow_redirects=False)).status == 200


async def test_groups_only_in_userinfo_are_read_from_there(setup: Setup) -> None:
    # A provider that keeps the id_token minimal (oidc-provider's default): the
    # groups claim comes from the userinfo endpoint.
    setup.provider.conform_id_token_claims = True
    await setup.provider.restart()
    pg = await setup.podgate()
    async with Browser(pg.public_url) as browser:
        url = await _callback_url(setup, browser, "root")
        landed = await browser.session.get(url, allow_redirects=False)
        assert landed.status == 302, await landed.text()
        assert (await browser.get("/hub/admin", allow_redirects=False)).status == 200


async def test_groups_that_cannot_be_recorded_are_said_so(setup: Setup) -> None:
    pg = await setup.podgate()
    async with Browser(pg.public_url) as browser:
        url = await _callback_url(setup, browser, "ada")
        faults = {"errors": {"patch": {"code": 503}, "create": {"code": 503}}}
        async with aiohttp.ClientSession() as api:
            put = await api.put(
                f"{pg.cluster.url}/kubesim/faults",
                json=faults,
                headers={"Authorization": f"Bearer {pg.cluster.token}"},
                ssl=False if pg.cluster.tls else None,
            )
            assert put.status == 200, await put.text()
        refused = await browser.session.get(url, allow_redirects=False)
        page = await refused.text()
        assert refused.status == 503
        assert "could not record your groups" in page and 'id="try-again"' in page
