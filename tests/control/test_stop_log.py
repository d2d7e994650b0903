"""Every stop of a server logs one line of its own: which server, who asked, and why.

Real podgates with echo pods; the stops come through the doors people use:
the user's stop button, the admin panel's confirmation form, the REST API
with a token, and the idle culler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from hub_kit import Browser, xsrf_of

from podgate.assembly import Podgate

MakePodgate = Callable[..., Awaitable[Podgate]]
TOKEN = "stop-log-token-0123456789"


def _stops(caplog: pytest.LogCaptureFixture, user: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "control.spawner" and getattr(r, "user", None) == user
        and r.getMessage().startswith("stopping ")
    ]  # fmt: skip


async def _until_stopped(pg: Podgate, user: str, seconds: float = 20.0) -> None:
    assert pg.control is not None and pg.control.spawner is not None
    spawner = pg.control.spawner
    async with asyncio.timeout(seconds):
        while True:
            if spawner.status(user).state in ("stopped", "failed"):
                return
            await asyncio.sleep(0.05)


async def test_user_admin_and_api_stops_each_log_who_and_why(
    make_podgate: MakePodgate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="control.spawner")
    tokens = [{"name": "ops-script", "token": TOKEN, "scopes": ["delete:servers", "list:users"]}]
    pg = await make_podgate({"auth": {"admins": ["root"]}, "api_tokens": tokens})
    browsers = {user: Browser(pg.public_url) for user in ("ada", "bob", "cy", "root")}
    try:
        for user in ("ada", "bob", "cy"):
            assert (await browsers[user].start_server(user))[-1].get("ready")

        ada = browsers["ada"]
        token = await ada.xsrf("/hub/home")
        assert (await ada.post("/hub/stop", {"_xsrf": token}, allow_redirects=False)).status == 303

        root = browsers["root"]
        assert (await root.login("root")).status == 200
        confirm = await root.get("/hub/admin/confirm?action=stop&user=bob")
        form = {"user": "bob", "_xsrf": xsrf_of(await confirm.text())}
        assert (await root.post("/hub/admin/stop", form, allow_redirects=False)).status == 303

        headers = {"Authorization": f"token {TOKEN}"}
        async with (
            aiohttp.ClientSession() as client,
            client.delete(f"{pg.ops_url}/hub/api/users/cy/server", headers=headers) as answer,
        ):
            assert answer.status in (202, 204)
        for user in ("ada", "bob", "cy"):
            await _until_stopped(pg, user)
    finally:
        for browser in browsers.values():
            await browser.close()

    expected = {
        "ada": ("user", "ada", "stop button", "by ada, its user (stop button)"),
        "bob": ("admin", "root", "admin panel", "by admin root (admin panel)"),
        "cy": ("api", "ops-script", "DELETE /hub/api/users/{name}/server", "through the API"),
    }
    for user, (by, actor, reason, words) in expected.items():
        lines = _stops(caplog, user)
        assert len(lines) == 1, [r.getMessage() for r in lines]
        record: Any = lines[0]
        assert (record.stopped_by, record.actor, record.reason) == (by, actor, reason)
        assert record.pod == f"jupyter-{user}"
        assert record.getMessage().startswith(f"stopping {user}'s server (pod jupyter-{user}) ")
        assert words in record.getMessage()


async def test_a_culled_server_logs_the_culler_and_the_reason(
    make_podgate: MakePodgate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="control.spawner")
    pg = await make_podgate({"culler": {"enabled": True, "timeout": 1.0, "every": 0.2}})
    async with Browser(pg.public_url) as ada:
        assert (await ada.start_server("ada"))[-1].get("ready")
        await _until_stopped(pg, "ada")
    lines = _stops(caplog, "ada")
    assert len(lines) == 1, [r.getMessage() for r in lines]
    record: Any = lines[0]
    assert (record.stopped_by, record.reason) == ("culler", "idle")
    assert "by the idle culler (idle)" in record.getMessage()
