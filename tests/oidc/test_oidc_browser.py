"""A person in headless Chromium signs in at the real provider and lands in their running server.

Chromium (tests/chromium_kit.py) presses podgate's "Sign in with" button,
types into the provider's own login page, consents, comes back through
podgate's callback, follows the spawn progress page and ends in the user's
server. A failed sign-in shows the failure page with its "Try again" link,
which starts over and works.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from chromium_kit import DevTools, chromium, devtools
from provider_kit import (
    PASSWORD,
    TestProvider,
    free_port,
    oidc_settings,
    start_provider,
    user,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[int]:
    async with chromium(tmp_path) as port:
        yield port


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[tuple[TestProvider, int]]:
    port = free_port()
    started = await start_provider(
        tmp_path / "provider",
        redirect_uris=[f"http://127.0.0.1:{port}/hub/oauth_callback"],
        users={"ada": user("Ada", ["lab"])},
    )
    try:
        yield started, port
    finally:
        await started.stop()


async def _sign_in_at_provider(tools: DevTools) -> None:
    assert await tools.wait_for("location.pathname.startsWith('/interaction/')"), "no login page"
    assert await tools.wait_for("!!document.getElementById('login')")
    await tools.evaluate(
        "document.getElementById('login').value = 'ada';"
        f"document.getElementById('password').value = {PASSWORD!r};"
        "document.getElementById('signin').click()"
    )
    # The consent page on a first sign-in.
    assert await tools.wait_for("!!document.getElementById('continue')"), "no consent page"
    await tools.evaluate("document.getElementById('continue').click()")


async def test_a_person_signs_in_and_lands_in_their_server(
    browser: int, provider: tuple[TestProvider, int], make_podgate: Any
) -> None:
    idp, port = provider
    pg = await make_podgate(oidc_settings(idp, port))
    async with asyncio.timeout(90), devtools(browser) as tools:
        await tools.call("Page.navigate", url=f"{pg.public_url}/hub/login")
        assert await tools.wait_for("!!document.getElementById('sign-in')")
        label = await tools.evaluate("document.getElementById('sign-in').textContent")
        assert label == "Sign in with 127.0.0.1"
        await screenshot(tools, "oidc-login-page.png")
        await tools.evaluate("document.getElementById('sign-in').click()")
        await _sign_in_at_provider(tools)
        landed = await tools.wait_for(
            "location.pathname.startsWith('/user/ada/') && location.host", seconds=60
        )
        assert landed == f"127.0.0.1:{port}", await tools.evaluate("location.href")


async def test_a_failed_sign_in_says_why_and_try_again_works(
    browser: int, provider: tuple[TestProvider, int], make_podgate: Any
) -> None:
    idp, port = provider
    pg = await make_podgate(oidc_settings(idp, port))
    async with asyncio.timeout(90), devtools(browser) as tools:
        # A callback with no attempt behind it (a stale bookmark, or a forged link).
        await tools.call(
            "Page.navigate", url=f"{pg.public_url}/hub/oauth_callback?code=x&state=forged"
        )
        shown = await tools.wait_for("document.querySelector('h1')?.textContent")
        assert shown == "Sign-in did not work"
        text = await tools.evaluate("document.body.innerText")
        assert "expired or was already used" in text
        await screenshot(tools, "oidc-failed-page.png")
        await tools.evaluate("document.getElementById('try-again').click()")
        await _sign_in_at_provider(tools)
        assert await tools.wait_for("location.pathname.startsWith('/user/ada/')", seconds=60)


async def screenshot(tools: DevTools, name: str) -> None:
    await asyncio.to_thread(ARTIFACTS.mkdir, exist_ok=True)
    await tools.screenshot(ARTIFACTS / name)
