"""The hub's pages at a laptop's and a phone's width, in a real browser: nothing cut off.

Headless Chromium (the driver of test_pages_browser) against a real podgate
with echo pods and long-ish names: the admin's home links to the panel; the
panel at 1280 and 390 px wide has no horizontal scrolling, neither of the
page nor of the table, and every row's action button is inside the window;
a user's name leads somewhere the admin may go. The edge's own 503 page is
styled. Screenshots are saved under test-artifacts/layout/ (look at them).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from chromium_kit import DevTools, devtools
from hub_kit import PASSWORD, Browser
from test_pages_browser import browser  # noqa: F401 - a fixture

MakePodgate = Callable[..., Awaitable[Any]]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "layout"
USERS = ("bob", "carol.longname@example.org", "dave")
WIDTHS = {"laptop": (1280, 800, False), "phone": (390, 844, True)}

NO_OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"
TABLE_FITS = (
    "(w => !w || w.scrollWidth <= w.clientWidth)(document.querySelector('.admin-table-wrap'))"
)
# Every action button lies wholly inside the window (not clipped by a scroller).
ACTIONS_VISIBLE = (
    "Array.from(document.querySelectorAll('.admin-actions a')).every(a => {"
    " const r = a.getBoundingClientRect();"
    " return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth; })"
)


async def _size(tools: DevTools, name: str) -> None:
    width, height, mobile = WIDTHS[name]
    await tools.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=mobile,
    )


async def _shot(tools: DevTools, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # The whole page, not just the window: what is below the fold is checked too.
    metrics = await tools.call("Page.getLayoutMetrics")
    size = metrics["cssContentSize"]
    await tools.call(
        "Emulation.setDeviceMetricsOverride",
        width=int(await tools.evaluate("window.innerWidth")),
        height=max(int(size["height"]), 400),
        deviceScaleFactor=1,
        mobile=bool(await tools.evaluate("window.innerWidth < 600")),
    )
    picture = await tools.screenshot(ARTIFACTS / name)
    assert picture.startswith(b"\x89PNG")


async def _visit(tools: DevTools, url: str, ready: str) -> None:
    await tools.call("Page.navigate", url=url)
    where = "location.href + ' ' + document.title"
    assert await tools.wait_for(f"document.readyState === 'complete' && ({ready})"), (
        url,
        await tools.evaluate(where),
    )


async def test_admin_pages_fit_a_laptop_and_a_phone(
    browser: int,  # noqa: F811 - the fixture imported above
    make_podgate: MakePodgate,
) -> None:
    # Cells as wide as a real cluster's: a registry image with a tag, requests and limits.
    spawner = {
        "image": "kubesim/echo:2026.12-python3.12-with-a-long-tag",
        "resources": {"cpu_request": "250m", "memory_request": "512Mi", "memory_limit": "2Gi"},
    }
    pg = await make_podgate({"auth": {"admins": ["root"]}, "spawner": spawner})
    base = pg.public_url.rstrip("/")
    for user in USERS[:2]:
        async with Browser(base) as person:
            assert (await person.start_server(user))[-1].get("ready")
    async with Browser(base) as dave:  # known, never started
        assert (await dave.login("dave", next_url="/hub/home")).status == 200

    async with asyncio.timeout(120), devtools(browser) as tools:
        await _size(tools, "laptop")
        # Signed in straight to the home page: no server of root's starts (and navigates).
        login = f"{base}/hub/login?next=%2Fhub%2Fhome"
        await _visit(tools, login, "!!document.querySelector('input[name=password]')")
        await tools.evaluate(
            "(() => { const f = document.querySelector('input[name=password]').form;"
            " f.elements.username.value = 'root';"
            f" f.elements.password.value = {json.dumps(PASSWORD)};"
            " f.querySelector('button[type=submit]').click(); })()"
        )
        assert await tools.wait_for("location.pathname === '/hub/home'")
        for name in WIDTHS:
            await _size(tools, name)
            await _visit(tools, f"{base}/hub/home", "!!document.querySelector('main h1')")
            # An admin's home leads to the panel.
            assert await tools.evaluate("!!document.querySelector('a[href=\"/hub/admin\"]')")
            assert await tools.evaluate(NO_OVERFLOW), name
            await _shot(tools, f"home-{name}.png")

            await _size(tools, name)
            rows = "document.querySelectorAll('tr[data-user]').length === 4"
            await _visit(tools, f"{base}/hub/admin", rows)
            fits = [await tools.evaluate(c) for c in (NO_OVERFLOW, TABLE_FITS, ACTIONS_VISIBLE)]
            await _shot(tools, f"admin-{name}.png")  # first: a failure leaves its picture
            assert fits == [True, True, True], (name, fits)

        # A name leads only where the admin may go: with admin_access off, not to /user/.
        links = await tools.evaluate(
            "Array.from(document.querySelectorAll('.admin-user a'), a => a.href)"
        )
        assert not [link for link in links if "/user/" in link], links
        for name in WIDTHS:
            await _size(tools, name)
            await _visit(tools, f"{base}/hub/admin/confirm?action=stop&user=bob", "true")
            assert await tools.evaluate(NO_OVERFLOW), name
            await _shot(tools, f"confirm-{name}.png")


async def test_the_edges_503_page_is_styled_at_both_widths(
    browser: int,  # noqa: F811 - the fixture imported above
    make_podgate: MakePodgate,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    pg = await make_podgate({"routes": [{"path": "/dead", "target": dead}]})
    base = pg.public_url.rstrip("/")
    async with asyncio.timeout(60), devtools(browser) as tools:
        for name in WIDTHS:
            await _size(tools, name)
            await _visit(tools, f"{base}/dead/lab", "!!document.querySelector('main h1')")
            # The stylesheet applied (a card with a border), and nothing overflows.
            styled = "getComputedStyle(document.querySelector('main.card')).borderTopStyle"
            assert await tools.evaluate(styled) == "solid"
            assert await tools.evaluate(NO_OVERFLOW), name
            assert await tools.evaluate("document.querySelector('main a.button').textContent") == (
                "Try again"
            )
            await _shot(tools, f"edge-503-{name}.png")
    async with aiohttp.ClientSession() as client, client.get(f"{base}/dead/x") as response:
        assert response.status == 503


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
