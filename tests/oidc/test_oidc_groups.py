"""Groups re-read with the refresh token, at every replica; logout at podgate and at the provider.

Two podgate replicas share a kubesim (as a real cluster) and the cookie
secret; the real provider's accounts change under them (its users file),
and the next group check, at whichever replica claims it, ends or narrows
the user's access at both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hub_kit import Browser, podgate_config
from provider_kit import (
    TestProvider,
    free_port,
    oidc_settings,
    start_provider,
    user,
    walk_to_callback,
)

from kubesim.cluster import SimCluster
from podgate.reload import apply_config

USERS = {"ada": user("ada", ["lab"]), "root": user("root", ["lab", "lab-admins"])}


@pytest.fixture
async def shared(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    cluster = SimCluster(namespaces=("default", "podgate"), kubelet="sim")
    await cluster.start()
    try:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace="podgate")
        yield {"cluster": {"kind": "kube", "kubeconfig": str(kubeconfig)}}
    finally:
        await cluster.stop()


@pytest.fixture
async def idp(tmp_path: Path) -> AsyncIterator[tuple[TestProvider, int]]:
    port = free_port()
    provider = await start_provider(
        tmp_path / "provider",
        redirect_uris=[f"http://127.0.0.1:{port}/hub/oauth_callback"],
        post_logout_redirect_uris=[f"http://127.0.0.1:{port}/hub/logout"],
        users=dict(USERS),
    )
    try:
        yield provider, port
    finally:
        await provider.stop()


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def replicas(
    make_podgate: Any, idp: tuple[TestProvider, int], shared: dict[str, Any], **oidc: Any
) -> tuple[Any, Any]:
    provider, port = idp
    back = f"http://127.0.0.1:{port}/hub/oauth_callback"
    settings = {"redirect_url": back, "refresh_seconds": 1, **oidc}
    first = await make_podgate({**oidc_settings(provider, port, **settings), **shared})
    second = await make_podgate({**oidc_settings(provider, free_port(), **settings), **shared})
    return first, second


async def sign_in(browser: Browser, provider: TestProvider, port: int, login: str) -> None:
    start = await browser.get("/hub/oauth_login?next=/hub/home", allow_redirects=False)
    url = await walk_to_callback(
        browser.session,
        start.headers["Location"],
        login,
        callback_prefix=f"http://127.0.0.1:{port}/hub/oauth_callback",
    )
    landed = await browser.session.get(url, allow_redirects=False)
    assert landed.status == 302, await landed.text()


async def status_at(browser: Browser, base: str, path: str) -> int:
    response = await browser.session.get(base + path, allow_redirects=False)
    await response.read()
    return response.status


async def until_status(
    browser: Browser, bases: list[str], path: str, status: int, seconds: float = 20.0
) -> None:
    deadline = time.monotonic() + seconds
    while True:
        seen = [await status_at(browser, base, path) for base in bases]
        if all(s == status for s in seen):
            return
        assert time.monotonic() < deadline, f"{path}: {seen}, not all {status}"
        await asyncio.sleep(0.2)


async def test_leaving_the_allowed_group_ends_access_at_every_replica(
    make_podgate: Any, idp: tuple[TestProvider, int], shared: dict[str, Any]
) -> None:
    provider, port = idp
    first, second = await replicas(make_podgate, idp, shared)
    bases = [first.public_url, second.public_url]
    async with Browser(first.public_url) as browser:
        await sign_in(browser, provider, port, "ada")
        await until_status(browser, bases, "/hub/home", 200, seconds=5)
        # Still in "lab" at the next checks: still in.
        await asyncio.sleep(2.5)
        assert [await status_at(browser, b, "/hub/home") for b in bases] == [200, 200]
        provider.set_users({**USERS, "ada": user("ada", ["visitors"])})
        await until_status(browser, bases, "/hub/home", 302)
    record = first.control.record_store.get("ada")
    assert record.groups == frozenset({"visitors"})
    assert record.refresh is None  # signed out everywhere: no more refreshes in their name


async def test_leaving_the_admin_group_ends_admin_rights_only(
    make_podgate: Any, idp: tuple[TestProvider, int], shared: dict[str, Any]
) -> None:
    provider, port = idp
    first, second = await replicas(make_podgate, idp, shared)
    bases = [first.public_url, second.public_url]
    async with Browser(first.public_url) as browser:
        await sign_in(browser, provider, port, "root")
        await until_status(browser, bases, "/hub/admin", 200, seconds=5)
        provider.set_users({**USERS, "root": user("root", ["lab"])})
        await until_status(browser, bases, "/hub/admin", 403)
        assert [await status_at(browser, b, "/hub/home") for b in bases] == [200, 200]


async def test_an_account_gone_at_the_provider_is_signed_out(
    make_podgate: Any, idp: tuple[TestProvider, int], shared: dict[str, Any]
) -> None:
    provider, port = idp
    first, second = await replicas(make_podgate, idp, shared)
    async with Browser(first.public_url) as browser:
        await sign_in(browser, provider, port, "ada")
        provider.set_users({"root": USERS["root"]})  # ada's account deleted
        await until_status(browser, [first.public_url, second.public_url], "/hub/home", 302)


async def test_a_provider_down_at_refresh_time_keeps_the_session(
    make_podgate: Any,
    idp: tuple[TestProvider, int],
    shared: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider, port = idp
    first, second = await replicas(make_podgate, idp, shared)
    async with Browser(first.public_url) as browser:
        await sign_in(browser, provider, port, "ada")
        await provider.stop()
        deadline = time.monotonic() + 15
        while "not re-read (provider_down)" not in caplog.text:
            assert time.monotonic() < deadline, "no refresh was tried"
            await asyncio.sleep(0.2)
        assert await status_at(browser, first.public_url, "/hub/home") == 200
        assert await status_at(browser, second.public_url, "/hub/home") == 200


async def test_logout_ends_the_session_and_with_end_session_the_providers(
    make_podgate: Any, idp: tuple[TestProvider, int], shared: dict[str, Any]
) -> None:
    provider, port = idp
    first, _ = await replicas(make_podgate, idp, shared, end_session=True)
    async with Browser(first.public_url) as browser:
        await sign_in(browser, provider, port, "ada")
        token = await browser.xsrf("/hub/home")
        out = await browser.post("/hub/logout", {"_xsrf": token}, allow_redirects=False)
        assert out.status == 303
        location = out.headers["Location"]
        assert location.startswith(f"{provider.issuer}/session/end?")
        query = parse_qs(urlsplit(location).query)
        assert query["post_logout_redirect_uri"] == [f"http://127.0.0.1:{port}/hub/logout"]
        assert await status_at(browser, first.public_url, "/hub/home") == 302
        # The provider asks to confirm, then sends the browser back to podgate.
        page = await browser.session.get(location)
        body = await page.text()
        assert "Sign out of the provider" in body, body[:300]
        form = body.split('action="', 1)[1].split('"', 1)[0]
        xsrf = body.split('name="xsrf" value="', 1)[1].split('"', 1)[0]
        done = await browser.session.post(
            form if form.startswith("http") else provider.issuer + form,
            data={"xsrf": xsrf, "logout": "yes"},
        )
        assert done.url.path == "/hub/logout"
        assert "signed out" in (await done.text()).lower()
        # Signing in again asks for the password again: the provider's session ended.
        start = await browser.get("/hub/oauth_login", allow_redirects=False)
        prompt = await browser.session.get(start.headers["Location"])
        assert 'name="login"' in await prompt.text()


async def test_logout_without_end_session_stays_at_podgate(
    make_podgate: Any, idp: tuple[TestProvider, int], shared: dict[str, Any]
) -> None:
    provider, port = idp
    first, _ = await replicas(make_podgate, idp, shared)
    async with Browser(first.public_url) as browser:
        await sign_in(browser, provider, port, "ada")
        token = await browser.xsrf("/hub/home")
        out = await browser.post("/hub/logout", {"_xsrf": token}, allow_redirects=False)
        assert out.headers["Location"] == "/hub/logout"
        assert await status_at(browser, first.public_url, "/hub/home") == 302


async def test_a_reload_that_drops_the_users_group_ends_their_session_at_once(
    make_podgate: Any, idp: tuple[TestProvider, int], shared: dict[str, Any]
) -> None:
    provider, port = idp
    first, _ = await replicas(make_podgate, idp, shared, refresh_seconds=0)
    running = first.control.hub.redirect_login
    async with Browser(first.public_url) as browser:
        await sign_in(browser, provider, port, "ada")
        assert await status_at(browser, first.public_url, "/hub/home") == 200
        # Another allowed group: applied at once, a new login built for the new settings.
        new = podgate_config(
            {
                **oidc_settings(provider, port, allowed_groups=["other"], refresh_seconds=0),
                **shared,
                "listen": first.config.listen,
            }
        )
        plan = apply_config(first, new)
        assert "auth.oidc.allowed_groups" in plan.applied
        assert first.control.hub.redirect_login is not running
        assert await status_at(browser, first.public_url, "/hub/home") == 302
        # Reloaded back: the recorded groups let the same cookie in again.
        apply_config(
            first,
            podgate_config(
                {
                    **oidc_settings(provider, port, refresh_seconds=0, redirect_url=None),
                    **shared,
                    "listen": first.config.listen,
                }
            ),
        )
        assert await status_at(browser, first.public_url, "/hub/home") == 200
