"""The stock `jupyterhub-singleuser` as a pod's command: podgate is the hub it expects.

podgate runs with `spawner.hub_api` on and its embedded kubesim, whose
kubelet runs the real `jupyterhub-singleuser` of the installed jupyterhub
package as the pod's process (no stand-in). The server checks the hub's
version, asks podgate who each visitor is, runs the OAuth flow for browsers
and reports its activity. The test then checks what a person sees:
- signed in to podgate, they open /user/<name>/lab and get JupyterLab
  after the OAuth round trip (authorize, oauth_callback), and a kernel runs
  1+1 over its WebSocket through the edge, with the server's own cookie;
- the same in headless Chromium: JupyterLab's shell renders;
- another signed-in user is refused, at the hub's authorize step too;
- the activity the server posts lands in the pod annotation the culler and
  jupyterhub-idle-culler read (the edge's own writer is held off, so only
  the server can have written it).
Every wait is bounded; podgate is stopped at the end, and its pods with it.
"""

from __future__ import annotations

import json
import logging
import ssl
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from chromium_kit import chromium, devtools
from hub_kit import PASSWORD, Browser, xsrf_of
from jupyter_kit import eventually, free_port, run_code

from control import names
from control.activity import ACTIVITY_ANNOTATION, parse_activity

pytest.importorskip("jupyterhub", reason="the stock jupyterhub-singleuser runs in the pod")
pytest.importorskip("jupyterlab", reason="the pod serves JupyterLab")
pytest.importorskip("ipykernel", reason="running 1+1 needs ipykernel")

MakePodgate = Callable[..., Awaitable[Any]]

SINGLEUSER = Path(sys.executable).parent / "jupyterhub-singleuser"
ADMIN = "admin-token-0123456789"
START_SECONDS = 120.0  # a real JupyterLab on a busy 2-core machine


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The whole exchange is normal traffic: podgate logs nothing at ERROR."""
    caplog.set_level(logging.INFO)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def settings(port: int) -> dict[str, Any]:
    return {
        "listen": f"127.0.0.1:{port}",
        "api_tokens": [{"name": "ops", "token": ADMIN, "scopes": ["admin"]}],
        # The edge's activity writer waits an hour: an annotation can only come from the server.
        "culler": {"activity_every": 3600},
        "spawner": {
            "image": "quay.io/jupyterhub/k8s-singleuser-sample:4.0.0",
            "cmd": [str(SINGLEUSER)],
            "jupyter_args": True,
            "readiness_path": "api",
            "hub_api": True,
            "hub_url": f"http://127.0.0.1:{port}",
            "env": {"JUPYTERHUB_ACTIVITY_INTERVAL": "2"},
        },
    }


async def sign_in_and_start(browser: Browser, user: str) -> list[dict[str, Any]]:
    """Open the lab, sign in, follow the spawn progress to its end."""
    first = await browser.get(f"/user/{user}/lab")
    assert first.url.path == "/hub/login", first.url
    form = {
        "username": user,
        "password": PASSWORD,
        "_xsrf": xsrf_of(await first.text()),
        "next": f"/user/{user}/lab",
    }
    signed_in = await browser.post("/hub/login", form)
    assert signed_in.url.path == f"/hub/spawn-pending/{user}", await signed_in.text()
    return await browser.progress(user, START_SECONDS)


def cookie(browser: Browser, name: str) -> str:
    for morsel in browser.session.cookie_jar:
        if morsel.key == name:
            return morsel.value
    raise AssertionError(f"no {name} cookie; have {[m.key for m in browser.session.cookie_jar]}")


async def open_lab_through_oauth(browser: Browser, user: str) -> str:
    """GET the lab: the server sends the browser through the hub's OAuth and back."""
    lab = await browser.get(f"/user/{user}/lab")
    assert lab.status == 200, await lab.text()
    assert lab.url.path == f"/user/{user}/lab"
    hops = [r.url.path for r in lab.history]
    assert "/hub/api/oauth2/authorize" in hops, hops
    assert f"/user/{user}/oauth_callback" in hops, hops
    return await lab.text()


async def run_one_plus_one(browser: Browser, user: str) -> str:
    """A kernel through the edge with the server's cookie (and Jupyter's XSRF check)."""
    xsrf = cookie(browser, "_xsrf")
    created = await browser.session.post(
        browser.url(f"/user/{user}/api/kernels"),
        json={"name": "python3"},
        headers={"X-XSRFToken": xsrf},
    )
    assert created.status == 201, await created.text()
    kernel = (await created.json())["id"]
    session = uuid.uuid4().hex
    async with browser.session.ws_connect(
        browser.url(f"/user/{user}/api/kernels/{kernel}/channels?session_id={session}"),
        origin=browser.base_url,
        timeout=aiohttp.ClientWSTimeout(ws_close=5),
    ) as ws:
        return await run_code(ws, "1+1", session, seconds=60)


async def lab_in_chromium(port: int, public: str, user: str, shots: Path) -> list[str]:
    """Sign in to podgate in Chromium, open the lab; JupyterLab's shell must render.

    Returns the names of the cookies the browser holds for the server's path.
    """
    async with devtools(port) as tools:
        await tools.call("Network.enable")
        await tools.call("Page.navigate", url=f"{public}/hub/login?next=/user/{user}/lab")
        assert await tools.wait_for("!!document.querySelector('#username')", 30)
        await tools.evaluate(
            f"document.querySelector('#username').value = {json.dumps(user)};"
            f"document.querySelector('#password').value = {json.dumps(PASSWORD)};"
            "document.querySelector('#username').form.submit(); true"
        )
        landed = await tools.wait_for(
            f"location.pathname === '/user/{user}/lab' && "
            "!!document.querySelector('.jp-LabShell') && "
            "!document.querySelector('#jupyterlab-splash') && location.href",
            START_SECONDS,
        )
        await tools.screenshot(shots / "lab.png")
        assert landed, await tools.evaluate("location.href + ' ' + document.title")
        jar = await tools.call("Network.getCookies", urls=[f"{public}/user/{user}/"])
        return [c["name"] for c in jar["cookies"]]


async def pod_log(cluster: Any, pod: str) -> str:
    """The pod's log through the Kubernetes API, as `kubectl logs` reads it."""
    ca = cluster.ca_file
    tls = ssl.create_default_context(cafile=str(ca)) if ca is not None else None
    headers = {"Authorization": f"Bearer {cluster.token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(f"{cluster.url}/api/v1/namespaces/podgate/pods/{pod}/log", ssl=tls) as got,
    ):
        assert got.status == 200, got.status
        return await got.text()


async def test_stock_singleuser_server_runs_against_podgate(
    make_podgate: MakePodgate, tmp_path: Path
) -> None:
    assert SINGLEUSER.exists(), f"no {SINGLEUSER}: install the jupyterhub package"
    port = free_port()
    pg = await make_podgate(settings(port))
    public = pg.public_url
    async with Browser(public) as ada, Browser(public) as grace:
        events = await sign_in_and_start(ada, "ada")
        assert events[-1].get("ready") is True, events
        # The server started: it reached the hub API (version check) and is Ready.
        page = await open_lab_through_oauth(ada, "ada")
        assert "jupyter-config-data" in page and "JupyterLab" in page
        cookie(ada, "jupyterhub-user-ada")  # the server's own login, from the OAuth flow
        assert await run_one_plus_one(ada, "ada") == "2"

        # Another signed-in user: the edge keeps them from the server, and the hub
        # would not authorize them for it either.
        await grace.login("grace", allow_redirects=False)
        other = await grace.get("/user/ada/lab", allow_redirects=False)
        assert other.status != 200 and "jupyterhub-user-ada" not in str(other.headers)
        query = {
            "client_id": "jupyterhub-user-ada",
            "redirect_uri": "/user/ada/oauth_callback",
            "response_type": "code",
            "state": "x",
        }
        refused = await grace.get(
            "/hub/api/oauth2/authorize?" + urlencode(query), allow_redirects=False
        )
        assert refused.status == 403 and "Location" not in refused.headers
        assert "may not use the server of ada" in await refused.text()

        # The activity the server reported is in the pod's annotation.
        before = time.time() - 60
        pod_name = names.pod_name("ada")

        async def reported() -> bool:
            pod = await pg.control.kube.get("pods", "podgate", pod_name)
            annotations = pod["metadata"].get("annotations") or {}
            when = parse_activity(annotations.get(ACTIVITY_ANNOTATION))
            return when is not None and when >= before

        await eventually(reported, 30, "the server's activity in the pod annotation", every=0.5)

    # What the server itself said: it found the hub's version acceptable (no warning),
    # signed ada in through OAuth, and had no trouble reporting activity.
    log = await pod_log(pg.cluster, pod_name)
    assert "Starting jupyterhub single-user server" in log, log[-3000:]
    assert "Logged-in user ada" in log, log[-3000:]
    for trouble in ("!= jupyterhub-singleuser version", "no version header", "Error notifying Hub"):
        assert trouble not in log, log[-3000:]

    # The same in a real browser, with a cookie jar of its own: a second OAuth round trip.
    async with chromium(tmp_path) as port_of_devtools:
        jar = await lab_in_chromium(port_of_devtools, public, "ada", tmp_path)
    assert "jupyterhub-user-ada" in jar, jar


async def key(tools: Any, name: str, code: int) -> None:
    for kind in ("keyDown", "keyUp"):
        await tools.call(
            "Input.dispatchKeyEvent", type=kind, key=name, code=name, windowsVirtualKeyCode=code
        )


async def menu_item(tools: Any, menu: str, label: str) -> None:
    """Open `menu` in JupyterLab's menu bar with a real mouse click, then choose `label`
    from it with the keyboard (arrow keys, Enter), as a person may."""
    find = (
        "(() => { const e = [...document.querySelectorAll('.lm-MenuBar-itemLabel')]"
        f".find(n => n.textContent.trim() === {json.dumps(menu)}); if (!e) return null;"
        " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];"
        " })()"
    )
    at = await tools.wait_for(find, 20)
    assert at, f"no {menu!r} menu"
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        await tools.call(
            "Input.dispatchMouseEvent", type=kind, x=at[0], y=at[1], button="left", clickCount=1
        )
    active = (
        "(document.querySelector('.lm-Menu .lm-Menu-item.lm-mod-active .lm-Menu-itemLabel')"
        " || {}).textContent"
    )
    assert await tools.wait_for("!!document.querySelector('.lm-Menu')", 10), "no menu opened"
    for _ in range(60):  # a menu of at most 60 items
        if await tools.evaluate(active) == label:
            await key(tools, "Enter", 13)
            return
        await key(tools, "ArrowDown", 40)
    labels = "[...document.querySelectorAll('.lm-Menu-itemLabel')].map(n => n.textContent)"
    raise AssertionError(f"no {label!r} in {await tools.evaluate(labels)}")


async def lab_menus_in_chromium(port: int, public: str, user: str, lab: str) -> tuple[str, str]:
    """Sign in in Chromium, open `lab` (JupyterLab), then use File → Hub Control Panel and
    File → Log Out as a person would; the paths each one led to."""
    async with devtools(port) as tools:
        await tools.call("Page.navigate", url=f"{public}/hub/login?next={lab}")
        assert await tools.wait_for("!!document.querySelector('#username')", 30)
        await tools.evaluate(
            f"document.querySelector('#username').value = {json.dumps(user)};"
            f"document.querySelector('#password').value = {json.dumps(PASSWORD)};"
            "document.querySelector('#username').form.submit(); true"
        )
        shell = await tools.wait_for(
            f"location.pathname === {json.dumps(lab)} && "
            "!!document.querySelector('.jp-LabShell') && "
            "!document.querySelector('#jupyterlab-splash') && location.href",
            START_SECONDS,
        )
        assert shell, await tools.evaluate("location.href + ' ' + document.title")
        # The control panel opens in a new tab: note where, instead of opening one.
        await tools.evaluate("window.open = (url) => { window.__opened = String(url); }; true")
        await menu_item(tools, "File", "Hub Control Panel")
        opened = await tools.wait_for("window.__opened", 10)
        assert opened, "Hub Control Panel opened nothing"
        await menu_item(tools, "File", "Log Out")
        left = await tools.wait_for(
            f"location.pathname !== {json.dumps(lab)} && "
            "document.readyState === 'complete' && location.pathname",
            30,
        )
        assert left == "/hub/logout", f"Log Out led to {left}"
        # podgate's sign-out page: its button signs out, as JupyterHub's logout does.
        form = "document.querySelector('main form[action=\"/hub/logout\"]')"
        assert await tools.wait_for(f"!!{form}", 10), "no sign-out button"
        await tools.evaluate(f"{form}.submit(); true")
        assert await tools.wait_for(
            f"document.readyState === 'complete' && !{form} && !document.querySelector('.who')",
            30,
        ), "still signed in after the sign-out button"
        # Signed out: the lab now leads to podgate's sign-in page.
        await tools.call("Page.navigate", url=public + lab)
        out = await tools.wait_for(
            "location.pathname === '/hub/login' && document.readyState === 'complete'"
            " && location.pathname",
            30,
        )
        return str(opened), str(out)


def hub_links(page: str) -> tuple[str, str]:
    """Where JupyterLab's File menu leads: Hub Control Panel and Log Out.

    Its hub extension builds both from the page config jupyterhub-singleuser
    writes (hubHost + hubPrefix + "home" / "logout").
    """
    start = page.index('id="jupyter-config-data"')
    body = page[page.index(">", start) + 1 : page.index("</script>", start)]
    config = json.loads(body)
    base = config["hubHost"] + config["hubPrefix"]
    return base + "home", base + "logout"


async def test_a_named_singleuser_server_signs_its_owner_in_through_oauth(
    make_podgate: MakePodgate, tmp_path: Path
) -> None:
    port = free_port()
    config = settings(port)
    config["spawner"]["named_server_limit_per_user"] = 1
    pg = await make_podgate(config)
    async with Browser(pg.public_url) as ada:
        # Signed in towards the home page, so only the named server starts.
        assert (await ada.login("ada", next_url="/hub/home")).status == 200
        home = await (await ada.get("/hub/home")).text()
        started = await ada.post(
            "/hub/spawn/ada", {"_xsrf": xsrf_of(home), "server_name": "gpu"}, allow_redirects=False
        )
        assert started.headers["Location"].startswith("/hub/spawn-pending/ada/gpu"), started
        token = xsrf_of(home)
        async with ada.session.get(
            ada.url(f"/hub/api/users/ada/servers/gpu/progress?_xsrf={token}"),
            headers={"Accept": "text/event-stream"},
            timeout=aiohttp.ClientTimeout(total=START_SECONDS),
        ) as stream:
            assert stream.status == 200, await stream.text()
            events = [
                json.loads(line[6:]) async for line in stream.content if line[:6] == b"data: "
            ]
        assert events[-1].get("ready") is True, events
        assert pg.control.spawner.status("ada").state == "stopped"  # only the named server
        page = await open_lab_through_oauth(ada, "ada/gpu")
        assert "JupyterLab" in page
        # The server's own OAuth client and cookie, as JupyterHub names them.
        cookie(ada, "jupyterhub-user-ada-gpu")
        # Its one redirect URI is its own: the default server's is refused for it.
        query = {
            "client_id": "jupyterhub-user-ada-gpu",
            "redirect_uri": "/user/ada/oauth_callback",
            "response_type": "code",
            "state": "x",
        }
        foreign = await ada.get(
            "/hub/api/oauth2/authorize?" + urlencode(query), allow_redirects=False
        )
        assert foreign.status == 400 and "Location" not in foreign.headers
        assert "not the one registered" in await foreign.text()
        assert await run_one_plus_one(ada, "ada/gpu") == "2"
        # JupyterLab's File → Hub Control Panel and Log Out lead to podgate's pages.
        control_panel, log_out = hub_links(page)
        assert (control_panel, log_out) == ("/hub/home", "/hub/logout")
        shown = await ada.get(control_panel)
        assert shown.status == 200 and 'data-server="gpu"' in await shown.text()
    log = await pod_log(pg.cluster, names.pod_name("ada/gpu"))
    assert "Logged-in user ada" in log, log[-3000:]
    # A personal token holding access:servers opens the server for scripts: the server
    # asks the hub about it, as it asks JupyterHub.
    api = pg.public_url + "/hub/api"
    for scopes, expected in ((["access:servers"], 200), (["read:users"], 302)):
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"token {ADMIN}"}) as admin,
            admin.post(f"{api}/users/ada/tokens", json={"scopes": scopes}) as made,
        ):
            assert made.status == 201, await made.text()
            secret = (await made.json())["token"]
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"token {secret}"}) as script,
            script.get(f"{pg.public_url}/user/ada/gpu/api/status", allow_redirects=False) as got,
        ):
            assert got.status == expected, (scopes, got.status, await got.text())
    # JupyterLab's menus in a real browser lead to podgate's pages.
    async with chromium(tmp_path) as port_of_devtools:
        opened, left = await lab_menus_in_chromium(
            port_of_devtools, pg.public_url, "ada", "/user/ada/gpu/lab"
        )
    assert opened.endswith("/hub/home"), opened
    assert left == "/hub/login", left  # signed out: the server sends the browser to sign in
    for trouble in ("!= jupyterhub-singleuser version", "no version header", "Error notifying Hub"):
        assert trouble not in log, log[-3000:]
