"""Reloading the config of a running podgate: SIGHUP and file changes, nothing dropped.

The end-to-end test runs `podgate run` as a process with the embedded
kubesim; a pod served by this test process sits behind a static route, so a
WebSocket and a slow request cross podgate while the config is reloaded.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import WSMsgType
from aiohttp.test_utils import TestServer
from hub_kit import COOKIE_SECRET, ECHO_SPAWNER, Browser, podgate_config
from test_drain import Pod, pod_app

from control.auth import hash_password
from podgate.reload import apply_config, plan_reload
from podgate.schema import ConfigError, build
from tests.integration.jupyter_kit import PodgateProcess, eventually, start_podgate_process

# The child imports this checkout's podgate, whatever else is installed.
CHECKOUT = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
SLOW = 2.0  # seconds the pod takes for /pod/slow: long enough to span a reload
OLD_TOKEN = "old-ops-token-0123456789"
NEW_TOKEN = "new-ops-token-9876543210"
PASSWORDS = {"ada": "ada's secret", "bob": "bob's secret", "cy": "cy's secret"}
HASHES = {name: hash_password(password) for name, password in PASSWORDS.items()}


@pytest.fixture
async def pod() -> AsyncIterator[Pod]:
    seen = Pod()
    app = pod_app(seen, slow_seconds=SLOW, prefix="/pod")
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    seen.url = str(server.make_url("")).rstrip("/")
    try:
        yield seen
    finally:
        await server.close()


def config_for(pod: Pod, users: list[str], profile: str, token: str) -> dict[str, Any]:
    return {
        "listen": "127.0.0.1:0",
        "ops_listen": "127.0.0.1:0",
        "log_format": "json",
        "reload_poll_seconds": 0.3,
        "auth": {"kind": "password", "users": {u: HASHES[u] for u in users}, "admins": ["ada"]},
        "session": {"cookie_secrets": [COOKIE_SECRET]},
        "api_tokens": [{"name": "ops", "token": token, "scopes": ["list:users", "read:users"]}],
        "spawner": {
            **ECHO_SPAWNER,
            "profiles": [{"slug": profile.lower(), "display_name": f"{profile} server"}],
        },
        "routes": [{"path": "/pod", "target": pod.url}],
    }


@pytest.fixture
async def podgate(pod: Pod, tmp_path: Path) -> AsyncIterator[PodgateProcess]:
    process = await start_podgate_process(
        config_for(pod, ["ada"], "Small", OLD_TOKEN), tmp_path, env=CHECKOUT
    )
    try:
        yield process
    finally:
        await process.end()


def write_config(process: PodgateProcess, tmp_path: Path, config: dict[str, Any]) -> None:
    # As a ConfigMap update does: the new content appears at once, whole.
    staged = tmp_path / "staged.yaml"
    staged.write_text(yaml.safe_dump(config, sort_keys=False))
    staged.replace(tmp_path / "podgate.yaml")


async def logs_say(process: PodgateProcess, pattern: str, count: int = 1) -> None:
    async def seen() -> bool:
        return len(re.findall(pattern, process.log.read_text(errors="replace"))) >= count

    await eventually(seen, 10, f"{count} log line(s) matching {pattern!r}")


async def login_status(public: str, user: str) -> int:
    async with Browser(public) as browser:
        response = await browser.login(user, PASSWORDS[user], allow_redirects=False)
        return response.status


async def api_status(ops: str, token: str) -> int:
    headers = {"Authorization": f"token {token}"}
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{ops}/hub/api/users", headers=headers) as response,
    ):
        return response.status


async def spawn_page(public: str) -> str:
    async with Browser(public) as browser:
        assert (await browser.login("ada", PASSWORDS["ada"], allow_redirects=False)).status == 303
        response = await browser.get("/hub/spawn")
        assert response.status == 200
        return await response.text()


async def echoes(ws: aiohttp.ClientWebSocketResponse, text: str) -> bool:
    await ws.send_str(text)
    message = await asyncio.wait_for(ws.receive(), 5)
    return message.type is WSMsgType.TEXT and message.data == "echo:" + text


async def test_sighup_reload_keeps_connections_and_applies_users_tokens_profiles(
    podgate: PodgateProcess, pod: Pod, tmp_path: Path
) -> None:
    public, ops = podgate.public, podgate.ops
    assert await login_status(public, "bob") == 403
    assert await api_status(ops, OLD_TOKEN) == 200
    async with aiohttp.ClientSession() as client, client.ws_connect(f"{public}/pod/ws") as ws:
        assert await echoes(ws, "before")

        async def slow() -> tuple[int, str]:
            async with client.get(f"{public}/pod/slow") as response:
                return response.status, await response.text()

        in_flight = asyncio.create_task(slow())
        await eventually(
            lambda: _true(pod.slow_started == 1), 5, "the slow request reached the pod"
        )

        # A user added, the profile changed, the API token rotated: SIGHUP.
        write_config(podgate, tmp_path, config_for(pod, ["ada", "bob"], "Large", NEW_TOKEN))
        podgate.process.send_signal(signal.SIGHUP)
        await logs_say(podgate, r"config reloaded \(SIGHUP\)")
        assert await asyncio.wait_for(in_flight, SLOW + 5) == (200, "slow done")
        assert await echoes(ws, "after the reload")
        assert await login_status(public, "bob") == 303
        assert await api_status(ops, OLD_TOKEN) == 403
        assert await api_status(ops, NEW_TOKEN) == 200
        page = await spawn_page(public)
        assert "Large server" in page and "Small server" not in page

        # An invalid edit is refused, named by its key, and nothing changes.
        broken = config_for(pod, ["ada"], "Tiny", OLD_TOKEN)
        broken["spawner"]["imagee"] = "typo"
        write_config(podgate, tmp_path, broken)
        podgate.process.send_signal(signal.SIGHUP)
        await logs_say(podgate, r"config reload \(SIGHUP\) refused[^\"]*spawner\.imagee")
        # A poll that saw the file before the signal arrived refuses it too (once);
        # after that, polls do not log the same bad file again.
        refusals = podgate.log.read_text().count("refused")
        assert refusals in (1, 2)
        await asyncio.sleep(1.0)  # several polls
        assert podgate.log.read_text().count("refused") == refusals
        assert await login_status(public, "bob") == 303
        assert await api_status(ops, NEW_TOKEN) == 200
        assert await api_status(ops, OLD_TOKEN) == 403
        assert "Large server" in await spawn_page(public)
        assert await echoes(ws, "after the refused reload")

        # A file edit alone is picked up by the poll; a restart-only key is only logged.
        fixed = config_for(pod, ["ada", "bob", "cy"], "Large", NEW_TOKEN)
        fixed["shutdown_grace_seconds"] = 3
        write_config(podgate, tmp_path, fixed)
        await logs_say(podgate, r"shutdown_grace_seconds changed but needs a restart")
        await logs_say(podgate, r"config reloaded \([^)]*podgate\.yaml changed\)")
        assert await login_status(public, "cy") == 303
        assert await echoes(ws, "after the poll")
    status = await podgate.signal_and_wait(signal.SIGTERM, 30)
    assert status == 0


async def _true(value: bool) -> bool:
    return value


async def test_a_changed_users_file_is_reloaded_and_a_bad_hash_in_it_is_refused(
    pod: Pod, tmp_path: Path
) -> None:
    users_file = tmp_path / "users.yaml"
    users_file.write_text(f"ada: {HASHES['ada']}\n")
    config = config_for(pod, [], "Small", OLD_TOKEN)
    config["auth"] = {"kind": "password", "users_file": str(users_file)}
    process = await start_podgate_process(config, tmp_path, env=CHECKOUT)
    try:
        assert await login_status(process.public, "bob") == 403
        users_file.write_text(f"ada: {HASHES['ada']}\nbob: {HASHES['bob']}\n")
        await logs_say(process, r"config reloaded \([^)]*users\.yaml changed\)")
        assert await login_status(process.public, "bob") == 303
        users_file.write_text(f"ada: {HASHES['ada']}\ncy: not-a-hash\n")
        await logs_say(process, r"refused, the running config stays: auth: ")
        assert await login_status(process.public, "bob") == 303
        assert await login_status(process.public, "cy") == 403
    finally:
        await process.end()


async def dummy_login_status(public: str, password: str) -> int:
    async with Browser(public) as browser:
        response = await browser.login("ada", password, allow_redirects=False)
        return response.status


async def test_removing_auth_password_makes_a_new_one_and_says_so(pod: Pod, tmp_path: Path) -> None:
    config = config_for(pod, [], "Small", OLD_TOKEN)
    config["auth"] = {"kind": "dummy", "password": "the first password"}
    process = await start_podgate_process(config, tmp_path, env=CHECKOUT)
    try:
        assert await dummy_login_status(process.public, "the first password") == 303
        assert "the first password" not in process.out.read_text()  # configured: not shown
        del config["auth"]["password"]
        write_config(process, tmp_path, config)
        await logs_say(process, r"a new generated password is in effect, printed on stdout")
        await logs_say(process, r"config reloaded \([^)]*\): auth\.password")
        shown = re.search(r"and the password (\S+)\n", process.out.read_text())
        assert shown, process.out.read_text()
        assert shown.group(1) not in process.log.read_text()
        assert await dummy_login_status(process.public, "the first password") == 403
        assert await dummy_login_status(process.public, shown.group(1)) == 303

        # Set again: the configured one applies, the generated one stops, nothing is shown.
        config["auth"]["password"] = "the second password"
        write_config(process, tmp_path, config)
        await logs_say(process, r"the password of auth\.password is in effect")
        assert await dummy_login_status(process.public, shown.group(1)) == 403
        assert await dummy_login_status(process.public, "the second password") == 303
        assert process.out.read_text().count("and the password ") == 1
    finally:
        await process.end()


# -- in process: what a reload applies, pins and refuses --------------------------------


def test_restart_only_keys_keep_their_running_value_and_the_rest_applies() -> None:
    running = podgate_config()
    new = podgate_config(
        {
            "listen": "127.0.0.1:9",
            "spawner": {"namespace": "elsewhere", "image": "kubesim/echo:2"},
            "auth": {"admins": ["ada"]},
        }
    )
    plan = plan_reload(running, new)
    assert plan.needs_restart == ("listen", "spawner.namespace")
    assert plan.applied == ("auth.admins", "spawner.image")
    assert plan.config.listen == running.listen
    assert plan.config.spawner.namespace == running.spawner.namespace
    assert plan.config.spawner.image == "kubesim/echo:2"


def test_allowed_origins_need_a_restart() -> None:
    # The edge is built once with its settings; a new list is named, not half applied.
    running = podgate_config()
    new = podgate_config({"edge": {"allowed_origins": ["https://lab.example.org"]}})
    plan = plan_reload(running, new)
    assert plan.needs_restart == ("edge.allowed_origins",)
    assert plan.config.edge.allowed_origins == ()


async def test_an_invalid_auth_reload_changes_nothing(make_podgate: Any, tmp_path: Path) -> None:
    pg = await make_podgate({"auth": {"kind": "password", "users": {"ada": HASHES["ada"]}}})
    hub = pg.control.hub
    before = (hub.authenticator, hub.access, hub.api_tokens, pg.config)
    bad = tmp_path / "users.yaml"
    bad.write_text("bob: not-a-hash\n")
    new = podgate_config(
        {
            "auth": {"kind": "password", "users_file": str(bad), "admins": ["bob"]},
            "api_tokens": [{"name": "ops", "token": NEW_TOKEN, "scopes": ["read:users"]}],
        }
    )
    with pytest.raises(ConfigError) as refused:
        apply_config(pg, new)
    assert refused.value.key == "auth"
    assert (hub.authenticator, hub.access, hub.api_tokens, pg.config) == before
    assert not hub.access.is_admin("bob")


async def test_an_unchanged_dummy_password_is_kept_and_not_announced(
    make_podgate: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pg = await make_podgate({"auth": {"kind": "dummy", "admins": ["ada"]}})  # PASSWORD set
    authenticator = pg.control.hub.authenticator
    apply_config(pg, podgate_config({"auth": {"kind": "dummy", "admins": ["bob"]}}))
    assert pg.control.hub.authenticator is authenticator
    assert pg.control.hub.access.is_admin("bob")
    assert "is in effect" not in caplog.text


async def test_a_generated_dummy_password_survives_a_reload(make_podgate: Any) -> None:
    pg = await make_podgate({"auth": {"kind": "dummy", "password": None}})
    authenticator = pg.control.hub.authenticator
    data = {"listen": "127.0.0.1:0", "ops_listen": "127.0.0.1:0", "auth": {"admins": ["ada"]}}
    data["session"] = {"cookie_secrets": [COOKIE_SECRET]}
    data["spawner"] = dict(ECHO_SPAWNER)
    apply_config(pg, build(type(pg.config), data))
    assert pg.control.hub.authenticator is authenticator
    assert pg.control.hub.access.is_admin("ada")
