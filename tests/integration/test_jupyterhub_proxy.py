"""A stock JupyterHub uses podgate as its proxy, exactly as it would use configurable-http-proxy.

podgate runs proxy-only (`control: {enabled: false}`) as a real process; the
real `jupyterhub` package runs beside it with ConfigurableHTTPProxy pointed at
podgate's ops port (should_start = False) and spawns real single-user servers
(jupyterhub-singleuser with ipykernel) as local processes. The test is a user
with a browser-like cookie jar who only ever talks to podgate's public port:
log in at the hub, get a server, run 1+1 in a kernel over its WebSocket, and
stop the server again. Podgate's CHP route API is checked at each step for
the routes the hub added and removed.

Nothing of podgate is mocked and no port is fixed; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

pytest.importorskip("jupyterhub", reason="the JupyterHub proof needs the jupyterhub package")
pytest.importorskip("jupyter_server", reason="jupyterhub-singleuser needs jupyter_server")
pytest.importorskip("ipykernel", reason="running 1+1 through podgate needs ipykernel")

BANNER = re.compile(r"podgate: public (http://\S+)  ops (http://\S+)")
XSRF_FIELD = re.compile(r'name="_xsrf"\s+value="([^"]+)"')
PROXY_TOKEN = "podgate-jupyterhub-proof-" + "p" * 16
SERVICE_TOKEN = "podgate-test-service-" + "s" * 24
USER = "alice"
PASSWORD = "shared-password-for-tests"
LOOPBACK_ENV = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@dataclass(frozen=True)
class Podgate:
    public: str
    ops: str
    log: Path


@dataclass(frozen=True)
class Hub:
    public: str  # the hub as users reach it: through podgate
    bind_url: str  # where the hub process itself listens
    log: Path


def free_port() -> int:
    """A loopback port that was free a moment ago (the hub needs its port up front)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the leader, give it `grace` seconds to clean up, then SIGKILL its whole group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # anything it started and left behind
    process.wait(timeout=10)


@pytest.fixture
def podgate(tmp_path: Path) -> Iterator[Podgate]:
    """podgate in proxy-only mode, like `configurable-http-proxy`, as a real process."""
    config = tmp_path / "podgate.yaml"
    config.write_text(
        "listen: 127.0.0.1:0\nops_listen: 127.0.0.1:0\ncontrol: {enabled: false}\n"
        "log_level: warning\n"
    )
    out, log = tmp_path / "podgate.out", tmp_path / "podgate.log"
    with out.open("wb") as stdout, log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "podgate.cli", "run", "--config", str(config)],
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, **LOOPBACK_ENV, "CONFIGPROXY_AUTH_TOKEN": PROXY_TOKEN},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 20
        while (found := BANNER.search(out.read_text())) is None:
            assert process.poll() is None, f"podgate exited:\n{tail(log)}"
            assert time.monotonic() < deadline, f"podgate printed no banner:\n{tail(log)}"
            time.sleep(0.05)
        yield Podgate(public=found.group(1), ops=found.group(2), log=log)
    finally:
        stop_process_group(process, grace=10)


def hub_config(podgate: Podgate, hub_bind_url: str, home: Path) -> str:
    """A jupyterhub_config.py that treats podgate as an externally run CHP."""
    settings: dict[str, Any] = {
        "ConfigurableHTTPProxy.should_start": False,
        "ConfigurableHTTPProxy.api_url": podgate.ops,
        "ConfigurableHTTPProxy.auth_token": PROXY_TOKEN,
        "JupyterHub.bind_url": podgate.public + "/",
        "JupyterHub.hub_bind_url": hub_bind_url,
        "JupyterHub.authenticator_class": "shared-password",
        "SharedPasswordAuthenticator.user_password": PASSWORD,
        "Authenticator.allow_all": True,
        "JupyterHub.spawner_class": "simple",
        "SimpleLocalProcessSpawner.home_dir_template": str(home / "{username}"),
        # The server stays in the hub's process group so the fixture can always
        # stop it (its kernels leave the group but exit when their server dies).
        "LocalProcessSpawner.popen_kwargs": {"start_new_session": False},
        "Spawner.cmd": [sys.executable, "-m", "jupyterhub.singleuser"],
        "Spawner.args": ["--allow-root"] if os.geteuid() == 0 else [],
        "Spawner.start_timeout": 60,
        "Spawner.http_timeout": 60,
        "JupyterHub.cleanup_servers": True,
        "JupyterHub.services": [{"name": "podgate-test", "api_token": SERVICE_TOKEN}],
        "JupyterHub.load_roles": [
            {
                "name": "podgate-test",
                "services": ["podgate-test"],
                "scopes": ["admin:servers", "read:users"],
            }
        ],
    }
    lines = ["c = get_config()  # noqa"]
    lines += [f"c.{key} = {value!r}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def start_hub(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`jupyterhub -f config` in its own process group, logging to `log`."""
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config), "--debug"],
            cwd=config.parent,  # the sqlite db and the cookie secret land here
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **LOOPBACK_ENV},
            start_new_session=True,
        )


@pytest.fixture
async def hub(podgate: Podgate, tmp_path: Path) -> AsyncIterator[Hub]:
    """A stock JupyterHub whose proxy is podgate; ready once its "/" route is in podgate."""
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    bind_url = f"http://127.0.0.1:{free_port()}"
    config = hub_dir / "jupyterhub_config.py"
    config.write_text(hub_config(podgate, bind_url, tmp_path / "home"))
    log = hub_dir / "jupyterhub.log"
    process = start_hub(config, log)
    try:
        async with aiohttp.ClientSession() as ops:
            deadline = time.monotonic() + 60
            while "/" not in (routes := await proxy_routes(ops, podgate)):
                assert process.poll() is None, f"jupyterhub exited:\n{tail(log)}"
                assert time.monotonic() < deadline, f"no hub route in {routes}:\n{tail(log)}"
                await asyncio.sleep(0.2)
        yield Hub(public=podgate.public + "/hub", bind_url=bind_url, log=log)
    finally:
        stop_process_group(process, grace=20)


async def proxy_routes(client: aiohttp.ClientSession, podgate: Podgate) -> dict[str, Any]:
    async with client.get(
        f"{podgate.ops}/api/routes", headers={"Authorization": f"token {PROXY_TOKEN}"}
    ) as response:
        assert response.status == 200, await response.text()
        routes: dict[str, Any] = await response.json()
        return routes


def browser() -> aiohttp.ClientSession:
    # unsafe=True: keep cookies set by an IP-address host such as 127.0.0.1.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def log_in(user: aiohttp.ClientSession, hub: Hub, password: str) -> tuple[int, URL, str]:
    """Fill in the hub's login form through podgate: status, final URL and page after redirects."""
    async with user.get(f"{hub.public}/login") as response:
        assert response.status == 200
        form = await response.text()
    fields = {"username": USER, "password": password}
    if xsrf := XSRF_FIELD.search(form):
        fields["_xsrf"] = xsrf.group(1)
    async with user.post(f"{hub.public}/login", data=fields) as response:
        return response.status, response.url, await response.text()


async def wait_for_server(user: aiohttp.ClientSession, podgate: Podgate, hub: Hub) -> None:
    """Until /user/<name>/api answers from the single-user server (the hub redirects before)."""
    deadline = time.monotonic() + 60
    while True:
        async with user.get(f"{podgate.public}/user/{USER}/api", allow_redirects=False) as r:
            if r.status == 200:
                assert "version" in await r.json()
                return
            assert r.status == 302, await r.text()  # the hub: "your server is starting"
        assert time.monotonic() < deadline, f"no server through podgate:\n{tail(hub.log)}"
        await asyncio.sleep(0.2)


def xsrf_header(user: aiohttp.ClientSession, podgate: Podgate) -> dict[str, str]:
    """Jupyter Server wants its _xsrf cookie echoed on cookie-authenticated writes."""
    cookies = user.cookie_jar.filter_cookies(URL(f"{podgate.public}/user/{USER}/api/kernels"))
    xsrf = cookies.get("_xsrf")
    assert xsrf is not None, "the single-user server set no _xsrf cookie"
    return {"X-XSRFToken": xsrf.value}


async def one_plus_one(user: aiohttp.ClientSession, channels_url: URL) -> str:
    """Run 1+1 on the kernel over its WebSocket; the text of the execute_result."""
    session = uuid.uuid4().hex
    msg_id = uuid.uuid4().hex
    request = {
        "header": {
            "msg_id": msg_id,
            "session": session,
            "username": USER,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": "1+1", "silent": False, "store_history": False},
        "channel": "shell",
        "buffers": [],
    }
    async with user.ws_connect(channels_url, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
        await ws.send_str(json.dumps(request))
        async with asyncio.timeout(30):
            for _ in range(200):  # status, execute_input, result, reply... bounded
                message = await ws.receive_json()
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if message["msg_type"] == "execute_result":
                    return str(message["content"]["data"]["text/plain"])
                if message["msg_type"] == "error":
                    raise AssertionError(f"the kernel failed: {message['content']}")
    raise AssertionError("no execute_result among 200 kernel messages")


async def test_jupyterhub_runs_a_user_server_through_podgate(
    hub: Hub, podgate: Podgate, tmp_path: Path
) -> None:
    home = tmp_path / "home" / USER
    home.mkdir(parents=True)
    (home / "hello.txt").write_text("hello from alice's home\n")
    routes_client = aiohttp.ClientSession()
    async with routes_client, browser() as user:
        # A wrong password is refused by the hub, through podgate, and spawns nothing.
        status, _, page = await log_in(user, hub, "not-the-password")
        assert status == 403
        assert "Invalid username or password" in page
        assert f"/user/{USER}" not in await proxy_routes(routes_client, podgate)

        # Log in: the hub starts the server and sends the browser to its pending page.
        status, final, page = await log_in(user, hub, PASSWORD)
        assert status == 200, page
        assert final.origin() == URL(podgate.public).origin()
        assert final.path in (f"/hub/spawn-pending/{USER}", f"/user/{USER}/")
        await wait_for_server(user, podgate, hub)

        # The hub registered the server in podgate's route table, as it would in CHP's.
        routes = await proxy_routes(routes_client, podgate)
        route = routes[f"/user/{USER}"]
        assert route["user"] == USER
        assert route["server_name"] == ""
        target = URL(route["target"])
        assert target.host == "127.0.0.1"
        assert routes["/"]["target"] == hub.bind_url
        assert route["target"] != hub.bind_url
        async with routes_client.get(target / "user" / USER / "api") as direct:
            assert direct.status == 200  # the target really is the single-user server

        # The user's first page on the server goes through the hub's OAuth, all via podgate.
        before = time.time()
        async with user.get(f"{podgate.public}/user/{USER}/files/hello.txt") as response:
            assert response.status == 200
            assert await response.text() == "hello from alice's home\n"
            visited = [r.url for r in response.history]
        assert all(u.origin() == URL(podgate.public).origin() for u in visited)
        assert any(u.path == "/hub/api/oauth2/authorize" for u in visited)
        assert any(u.path == f"/user/{USER}/oauth_callback" for u in visited)
        async with user.get(f"{podgate.public}/user/{USER}/api/status") as response:
            assert response.status == 200
            assert (await response.json())["kernels"] == 0

        # A kernel through podgate: created over HTTP, 1+1 over its WebSocket.
        kernels = f"{podgate.public}/user/{USER}/api/kernels"
        headers = xsrf_header(user, podgate)
        async with user.post(kernels, json={"name": "python3"}, headers=headers) as response:
            assert response.status == 201, await response.text()
            kernel_id = (await response.json())["id"]
        channels = URL(kernels).with_scheme("ws") / kernel_id / "channels"
        assert await one_plus_one(user, channels) == "2"
        async with user.delete(f"{kernels}/{kernel_id}", headers=headers) as response:
            assert response.status == 204

        # podgate counted that traffic on the route, as CHP does for the hub's culler.
        route = (await proxy_routes(routes_client, podgate))[f"/user/{USER}"]
        assert parse_js_date(route["last_activity"]) >= before - 0.001

        # Stopping the server through the hub's REST API (via podgate) removes its route.
        async with routes_client.delete(
            f"{hub.public}/api/users/{USER}/server",
            headers={"Authorization": f"token {SERVICE_TOKEN}"},
        ) as response:
            assert response.status in (202, 204), await response.text()
        deadline = time.monotonic() + 30
        while f"/user/{USER}" in (routes := await proxy_routes(routes_client, podgate)):
            assert time.monotonic() < deadline, f"the route stayed: {routes}"
            await asyncio.sleep(0.2)
        assert "/" in routes  # the hub's own route stays
        async with user.get(f"{podgate.public}/user/{USER}/api", allow_redirects=False) as r:
            assert r.status == 302  # the hub answers again: no server
            assert r.headers["Location"] == f"/hub/user/{USER}/api"


def parse_js_date(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
