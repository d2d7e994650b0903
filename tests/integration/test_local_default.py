"""The README's promise, for real: `podgate run` alone gives a person a working JupyterLab.

podgate runs as a process with the built-in defaults (embedded kubesim whose
kubelet runs the default image as a real JupyterLab); the config only moves
its ports to 127.0.0.1:0 and fixes the dummy password. Two people use it
with browser-like cookie jars through the public port only: sign in, watch
the spawn progress, open JupyterLab, create a kernel and run 1+1 over its
WebSocket, stop a server through the hub. Then SIGTERM: podgate exits 0 and
no Jupyter process (server or kernel) is left on the machine.

Found on the way: Jupyter's XSRF check needs nothing from the browser here.
The edge adds `Authorization: token <pod token>` upstream, and Jupyter Server
skips its XSRF check for token-authenticated requests, so a POST to
/user/<name>/api/kernels works with no _xsrf cookie or header; and a
WebSocket with the browser's Origin passes Jupyter's origin check because
the edge keeps the public Host header. Since the pod's token skips those
checks, the edge checks the Origin of changes and handshakes itself
(edge.origin; tests/edge/test_origin_checks.py).
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from hub_kit import PASSWORD, Browser, xsrf_of
from jupyter_kit import (
    PodgateProcess,
    ProcInfo,
    children_of,
    eventually,
    living_in_sessions,
    processes,
    run_code,
    start_podgate_process,
)

pytest.importorskip("jupyter_server", reason="the default image runs a real Jupyter Server")
pytest.importorskip("ipykernel", reason="running 1+1 needs ipykernel")

PROXY_TOKEN = "local-default-route-api-" + "t" * 16
START_SECONDS = 90.0  # a real JupyterLab on a busy 2-core machine


@pytest.fixture
async def podgate(tmp_path: Path) -> AsyncIterator[PodgateProcess]:
    """`podgate run` with the defaults, ports moved to 127.0.0.1:0; nothing left behind."""
    config = {
        "listen": "127.0.0.1:0",
        "ops_listen": "127.0.0.1:0",
        "auth": {"kind": "dummy", "password": PASSWORD},
    }
    # Jupyter writes its runtime and config files under HOME: keep them in the test's dir.
    env = {"HOME": str(tmp_path), "CONFIGPROXY_AUTH_TOKEN": PROXY_TOKEN}
    process = await start_podgate_process(config, tmp_path, env=env)
    try:
        yield process
    finally:
        await process.end()


async def routes(ops: str) -> dict[str, object]:
    """The route table as the CHP-compatible API shows it."""
    async with (
        aiohttp.ClientSession() as client,
        client.get(
            f"{ops}/api/routes", headers={"Authorization": f"token {PROXY_TOKEN}"}
        ) as response,
    ):
        assert response.status == 200
        return dict(await response.json())


def processes_below(root: int) -> list[ProcInfo]:
    """Every process below `root`: the pods the embedded kubelet started, their kernels."""
    found: list[ProcInfo] = []
    todo = [root]
    for _ in range(10_000):  # bounded walk: a tree, not a loop
        if not todo:
            break
        below = children_of(todo.pop())
        found += below
        todo += [info.pid for info in below]
    return found


async def sign_in_and_start(browser: Browser, user: str) -> list[dict[str, object]]:
    """What a person does: open their lab, sign in, wait on the progress page until ready."""
    first = await browser.get(f"/user/{user}/lab")
    assert first.status == 200
    assert first.url.path == "/hub/login"
    assert first.url.query["next"] == f"/user/{user}/lab"
    form = {
        "username": user,
        "password": PASSWORD,
        "_xsrf": xsrf_of(await first.text()),
        "next": f"/user/{user}/lab",
    }
    signed_in = await browser.post("/hub/login", form)
    # Signed in, the edge found no server and the hub started one: the progress page.
    assert signed_in.status == 200, await signed_in.text()
    assert signed_in.url.path == f"/hub/spawn-pending/{user}"
    return await browser.progress(user, START_SECONDS)


async def test_podgate_run_gives_each_user_a_working_jupyterlab_and_sigterm_leaves_nothing(
    podgate: PodgateProcess,
) -> None:
    public = podgate.public
    async with Browser(public) as ada, Browser(public) as grace:
        ada_events, grace_events = await asyncio.gather(
            sign_in_and_start(ada, "ada"), sign_in_and_start(grace, "grace")
        )
        for events in (ada_events, grace_events):
            assert events[-1]["ready"] is True, events
            assert [e["progress"] for e in events] == sorted(e["progress"] for e in events)
        assert ada_events[-1]["url"] == "/user/ada/"
        lab = await ada.get("/user/ada/lab")
        assert lab.status == 200
        assert lab.url.path == "/user/ada/lab"
        page = await lab.text()
        assert "jupyter-config-data" in page and "JupyterLab" in page
        assert set(await routes(podgate.ops)) >= {"/user/ada", "/user/grace"}

        # A kernel through the proxy: the edge's pod token is the only credential.
        created = await ada.session.post(ada.url("/user/ada/api/kernels"), json={"name": "python3"})
        assert created.status == 201, await created.text()
        kernel = (await created.json())["id"]
        session = uuid.uuid4().hex
        async with ada.session.ws_connect(
            ada.url(f"/user/ada/api/kernels/{kernel}/channels?session_id={session}"),
            origin=public,
            timeout=aiohttp.ClientWSTimeout(ws_close=5),
        ) as ws:
            assert await run_code(ws, "1+1", session) == "2"

        # The processes of both servers and ada's kernel, as they run now.
        tree = processes_below(podgate.pid)
        podgate.pod_sessions.update(info.session for info in tree)
        ada_sessions = {info.session for info in tree if "/user/ada/" in info.cmdline}
        assert ada_sessions, [info.cmdline for info in tree]
        assert any("ipykernel" in info.cmdline for info in tree)

        # Someone else's server stays theirs: ada's cookie does not reach grace's pod.
        other = await ada.get("/user/grace/api/kernels", allow_redirects=False)
        assert other.status in (302, 403, 404), other.status
        assert other.status != 200

        # Stop through the hub, as the home page's button does.
        home = await ada.get("/hub/home")
        stopped = await ada.post("/hub/stop", {"_xsrf": xsrf_of(await home.text())})
        assert stopped.status == 200
        assert stopped.url.path == "/hub/home"

        async def route_gone() -> bool:
            return "/user/ada" not in await routes(podgate.ops)

        async def processes_gone() -> bool:
            return not living_in_sessions(ada_sessions)

        await eventually(route_gone, 30, "ada's route removed after the stop")
        # The pod's processes end too: the server and its kernel.
        await eventually(processes_gone, 30, "ada's server and kernel processes ended")
        after = await ada.get("/user/ada/lab", allow_redirects=False)
        assert after.status == 302
        assert after.headers["Location"].startswith("/hub/spawn/ada")
        # grace's server is untouched and still serves her; she opens a kernel too.
        assert (await grace.get("/user/grace/api/status")).status == 200
        created = await grace.session.post(
            grace.url("/user/grace/api/kernels"), json={"name": "python3"}
        )
        assert created.status == 201, await created.text()
        created.release()
        tree = processes_below(podgate.pid)
        podgate.pod_sessions.update(info.session for info in tree)
        assert any("ipykernel" in info.cmdline for info in tree)

    # SIGTERM with grace's JupyterLab and her kernel still running.
    assert living_in_sessions(podgate.pod_sessions)
    assert await podgate.signal_and_wait(signal.SIGTERM, 45) == 0
    assert "Traceback" not in podgate.log.read_text(errors="replace")
    assert living_in_sessions(podgate.pod_sessions) == []
    pids = {info.pid for info in tree}
    assert [info for info in processes() if info.pid in pids and info.state != "Z"] == []
