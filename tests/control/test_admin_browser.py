"""The admin panel in a real browser: sign in, see a running server, stop it, watch it go.

Headless Chromium (Debian's, driven over the DevTools protocol with this
team's small driver, tests/chromium_kit.py) against a real podgate with
echo pods: the admin signs in through the login form, opens /hub/admin,
stops bob's server through the confirmation page, and the listing follows
the servers by itself (admin.js) without the page being reloaded.
Screenshots go to tmp_path and to <pytest tmp>/artifacts/admin/.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from chromium_kit import DevTools, devtools
from hub_kit import PASSWORD, Browser
from test_pages_browser import browser  # noqa: F401 - a fixture

MakePodgate = Callable[..., Awaitable[Any]]


def _state_of(user: str) -> str:
    """JS: the state shown in `user`'s row ("" while there is none)."""
    selector = json.dumps(f'tr[data-user="{user}"]')
    return f"((document.querySelector({selector}) || {{dataset: {{}}}}).dataset.state || '')"


def _click(selector: str) -> str:
    return f"(e => (e ? (e.click(), true) : false))(document.querySelector({json.dumps(selector)}))"


async def _shot(tools: DevTools, tmp_path: Path, artifacts: Path, name: str) -> None:
    picture = await tools.screenshot(tmp_path / name)
    assert picture.startswith(b"\x89PNG")
    shutil.copyfile(tmp_path / name, artifacts / name)


async def test_admin_stops_a_server_and_sees_it_go_without_reloading(
    browser: int,  # noqa: F811 - the fixture imported above
    make_podgate: MakePodgate,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    artifacts = tmp_path_factory.getbasetemp() / "artifacts" / "admin"
    artifacts.mkdir(parents=True, exist_ok=True)
    pg = await make_podgate({"auth": {"admins": ["root"]}})
    base = pg.public_url.rstrip("/")
    for user in ("bob", "carol"):
        async with Browser(base) as person:
            assert (await person.start_server(user))[-1].get("ready")

    async with asyncio.timeout(90), devtools(browser) as tools:
        await tools.call(
            "Emulation.setDeviceMetricsOverride",
            width=1440,
            height=820,
            deviceScaleFactor=1,
            mobile=False,
        )
        await tools.call("Page.navigate", url=f"{base}/hub/admin")
        # Signed out: the login form, which comes back to the panel.
        assert await tools.wait_for("!!document.querySelector('input[name=password]')")
        await tools.evaluate(
            "(() => { const f = document.querySelector('input[name=password]').form;"
            " f.elements.username.value = 'root';"
            f" f.elements.password.value = {json.dumps(PASSWORD)};"
            " f.querySelector('button[type=submit]').click(); })()"
        )
        assert await tools.wait_for(f"location.pathname === '/hub/admin' && {_state_of('bob')}")
        assert await tools.evaluate(_state_of("bob")) == "running"
        row = await tools.evaluate("document.querySelector('tr[data-user=\"bob\"]').innerText")
        assert "jupyter-bob" in row and "kubesim/echo" in row
        await _shot(tools, tmp_path, artifacts, "admin-1-running.png")

        # Stop bob through the confirmation page (a real form POST with the CSRF token).
        assert await tools.evaluate(_click('tr[data-user="bob"] a[data-confirm="stop"]'))
        assert await tools.wait_for("location.pathname === '/hub/admin/confirm'")
        question = await tools.wait_for(
            "(p => p && p.textContent)(document.querySelector('main p'))"
        )
        assert question.startswith("bob's server is running. Stop it?")
        await _shot(tools, tmp_path, artifacts, "admin-2-confirm.png")
        assert await tools.evaluate(_click("main form button[type=submit]"))
        assert (
            await tools.wait_for(
                "location.pathname === '/hub/admin' && document.querySelector('.notice')"
                " && document.querySelector('.notice').textContent"
            )
            == "bob's server is stopping."
        )

        # From here on the page is never reloaded: a marker on window would not survive it.
        await tools.evaluate("window.adminMarker = 'same page'")
        assert await tools.wait_for(f"{_state_of('bob')} === 'stopped'", seconds=30)
        # A change made elsewhere shows up too: carol's server stopped by another admin.
        await pg.control.hub.spawner.stop("carol")
        assert await tools.wait_for(f"{_state_of('carol')} === 'stopped'", seconds=30)
        assert await tools.evaluate("window.adminMarker") == "same page"
        assert await tools.evaluate("!!document.body.dataset.adminUpdated")
        await _shot(tools, tmp_path, artifacts, "admin-3-stopped.png")
