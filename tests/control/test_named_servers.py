"""Named servers as JupyterHub has them: the REST API, the limit, names, pods and routes.

Every API test runs on kubesim and on the real API server (both_servers);
the pod-name test is pure and proves that no user's named server can take
the name of another user's default server.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from hub_kit import Browser, xsrf_of
from hypothesis import given
from hypothesis import strategies as st

from control import names
from control.errors import BadServerName
from control.manifests import pod_manifest, server_url
from control.pages import progress_url
from control.settings import SpawnerSettings, Storage
from control.singleuser_env import singleuser_env
from control.singleuser_tokens import ServerTokens

MakePodgate = Callable[..., Awaitable[Any]]

TOKEN = "admin-token-0123456789"
NAMED = {
    "api_tokens": [{"name": "ops", "token": TOKEN, "scopes": ["admin"]}],
    "spawner": {"named_server_limit_per_user": 2},
}

# User names as normalise_username admits them, and server names JupyterHub admits:
# the escape character itself, separators, digits at the edges, non-ASCII letters.
TRICKY_USERS = [
    "ada",
    "ada-",
    "ada-2d",
    "ada--one",
    "a",
    "a-2d-2dx",
    "ada.one",
    "ada_one",
    "ada@one",
    "ada+one",
    "ada-one",
    "ada-2d-2done",
    "élodie",
    "-2d",
    "x" * 64,
    "x" * 63 + "y",
    "ada-2d-2d",
]
TRICKY_SERVERS = ["one", "a", "a-b", "a-b-c", "d2", "x" * 30, "one-2d", "a0-1", "ad"]


def test_named_pods_never_take_another_servers_name() -> None:
    default = {names.pod_name(user): user for user in TRICKY_USERS}
    assert len(default) == len(TRICKY_USERS)
    named: dict[str, tuple[str, str]] = {}
    for user in TRICKY_USERS:
        for server in TRICKY_SERVERS:
            key = names.server_key(user, server)
            pod = names.pod_name(key)
            assert pod not in default, (user, server, default.get(pod))
            assert pod not in named, ((user, server), named[pod])
            assert len(pod) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", pod), pod
            named[pod] = (user, server)
            assert names.pvc_name(key) != names.pvc_name(user)
    # KubeSpawner's shape for the plain case; the default server's name is as it always was.
    assert names.pod_name("ada/one") == "jupyter-ada--one"
    assert names.pod_name("ada") == "jupyter-ada"
    assert names.pvc_name("ada/one") == "claim-ada--one"


_user_names = st.text(alphabet=st.sampled_from("ab-._@+é0"), min_size=1, max_size=70).filter(
    lambda n: n[0].isalnum()
)
_server_names = st.from_regex(r"[a-z]([a-z0-9]|-(?=[a-z0-9])){0,29}", fullmatch=True).filter(
    lambda n: len(n) <= 30 and not n.endswith("-")
)


@given(_user_names, _user_names, _server_names)
def test_no_named_pod_equals_any_default_pod(user: str, other: str, server: str) -> None:
    assert names.pod_name(names.server_key(user, server)) != names.pod_name(other)


@given(_user_names, _server_names, _user_names, _server_names)
def test_two_named_servers_have_two_pod_names(u1: str, s1: str, u2: str, s2: str) -> None:
    if (u1, s1) != (u2, s2):
        assert names.pod_name(f"{u1}/{s1}") != names.pod_name(f"{u2}/{s2}")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "needs a name"),
        ("Gpu", "lower-case letter"),
        ("1gpu", "lower-case letter"),
        ("gpu-", "end with a letter or a digit"),
        ("a--b", "two hyphens"),
        ("x" * 31, "at most 30"),
        ("gpu_1", "'_'"),
        ("gpu.1", "'.'"),
        ("gpu 1", "a space"),
    ],
)
def test_server_names_follow_jupyterhub(name: str, words: str) -> None:
    with pytest.raises(BadServerName, match=re.escape(words)):
        names.check_server_name(name)


def test_named_server_pod_and_claim_as_kubespawner_makes_them() -> None:
    settings = SpawnerSettings(
        storage=Storage(), hub_api=True, hub_url="http://podgate.podgate.svc:8000"
    )
    pod = pod_manifest("ada/gpu", settings, None, "token-0123456789")
    meta = pod["metadata"]
    assert meta["name"] == "jupyter-ada--gpu"
    assert meta["annotations"][names.USER_ANNOTATION] == "ada"
    assert meta["annotations"][names.SERVER_ANNOTATION] == "gpu"
    assert meta["labels"][names.SERVER_LABEL] == "gpu"
    assert meta["labels"][names.USER_LABEL] == "ada"
    claim = pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert claim == "claim-ada--gpu"  # a claim per server: KubeSpawner's default
    env = {v["name"]: v.get("value") for v in pod["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_SERVER_NAME"] == "gpu"
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/user/ada/gpu/"
    assert env["JUPYTERHUB_CLIENT_ID"] == "jupyterhub-user-ada-gpu"
    assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == "/user/ada/gpu/oauth_callback"
    assert json.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"]) == [
        "access:servers!server=ada/gpu",
        "access:servers!user=ada",
    ]
    # The default server's pod carries no trace of named servers.
    plain = pod_manifest("ada", settings, None, "token-0123456789")["metadata"]
    assert names.SERVER_ANNOTATION not in plain["annotations"]
    assert names.SERVER_LABEL not in plain["labels"]
    assert (
        singleuser_env("ada", "/user/ada/", "t", "http://h:1", 8888)["JUPYTERHUB_SERVER_NAME"] == ""
    )
    assert server_url("ada/gpu") == "/user/ada/gpu/" and server_url("ada") == "/user/ada/"
    # The progress page follows the named server's own stream.
    assert progress_url("ada/gpu") == "/hub/api/users/ada/servers/gpu/progress"
    assert progress_url("ada") == "/hub/api/users/ada/server/progress"


async def _call(
    url: str, method: str = "GET", *, token: str | None = TOKEN, body: Any = None, **kw: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"token {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    async with (
        aiohttp.ClientSession(**kw) as session,
        session.request(method, url, headers=headers, json=body) as response,
    ):
        raw = await response.read()
        if response.content_type == "application/json":
            return response.status, json.loads(raw)
        return response.status, raw


async def _until(check: Callable[[], bool], seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def _made(pg: Any, *users: str) -> str:
    api = pg.ops_url + "/hub/api"
    for user in users:
        status, _ = await _call(f"{api}/users/{user}", "POST")
        assert status == 201
    return api


@pytest.mark.both_servers
async def test_create_list_limit_and_stop_named_servers(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(NAMED)
    api = await _made(pg, "nina")
    spawner = pg.control.spawner
    # Each test has its own users: the real API server is shared by the session.
    for server in ("one", "two"):
        status, body = await _call(f"{api}/users/nina/servers/{server}", "POST")
        assert status in (201, 202), body
    await _until(lambda: spawner.status("nina/one").state == "running")
    await _until(lambda: spawner.status("nina/two").state == "running")
    assert spawner.status("nina").state == "stopped"  # the default server is its own
    pods = pg.control.pods.cache
    assert {"jupyter-nina--one", "jupyter-nina--two"} <= set(pods)
    # The limit counts named servers only, as JupyterHub does.
    status, body = await _call(f"{api}/users/nina/servers/three", "POST")
    assert status == 400 and "maximum of 2 named servers" in body["message"], body
    status, body = await _call(f"{api}/users/nina/servers/one", "POST")
    assert status == 400 and "already running" in body["message"], body
    status, model = await _call(f"{api}/users/nina")
    assert set(model["servers"]) == {"one", "two"}
    one = model["servers"]["one"]
    assert one["name"] == "one" and one["full_name"] == "nina/one" and one["ready"] is True
    assert one["url"] == "/user/nina/one/"
    assert one["progress_url"] == "/hub/api/users/nina/servers/one/progress"
    assert one["state"] == {"pod_name": "jupyter-nina--one"}
    assert model["server"] is None  # the default server is not running
    status, listed = await _call(f"{api}/users?state=ready")
    assert "nina" in [u["name"] for u in listed]  # ready through her named servers alone
    # The progress of a named server, by its own path.
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{api}/users/nina/servers/one/progress", headers={"Authorization": f"token {TOKEN}"}
        ) as response,
    ):
        assert response.status == 200
        events = [json.loads(line[6:]) async for line in response.content if line[:6] == b"data: "]
        assert events[-1]["ready"] is True and events[-1]["url"] == "/user/nina/one/", events
    # Stop one: the other keeps running; the model lists it alone.
    status, body = await _call(f"{api}/users/nina/servers/one", "DELETE", body={"remove": True})
    assert status in (202, 204), body
    await _until(lambda: spawner.status("nina/one").state == "stopped")
    assert spawner.status("nina/two").state == "running"
    status, model = await _call(f"{api}/users/nina")
    assert set(model["servers"]) == {"two"}
    status, body = await _call(f"{api}/users/nina/servers/one", "DELETE")
    assert status == 404 and "has no server named 'one'" in body["message"]
    # Room again under the limit.
    status, body = await _call(f"{api}/users/nina/servers/three", "POST")
    assert status in (201, 202), body


@pytest.mark.both_servers
async def test_bad_names_and_named_servers_off_are_clear_400s(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(NAMED)
    api = await _made(pg, "olga")
    for bad, words in [
        ("Gpu", "lower-case letter"),
        ("gpu-", "end with a letter"),
        ("a--b", "two hyphens"),
        ("x" * 31, "at most 30"),
        ("gpu_1", "only a-z, 0-9 and -"),
        ("%C3%A9t%C3%A9", "lower-case letter"),
    ]:
        status, body = await _call(f"{api}/users/olga/servers/{bad}", "POST")
        assert status == 400 and words in body["message"], (bad, body)
    assert not any("--" in name.removeprefix("jupyter-") for name in pg.control.pods.cache)
    off = await make_podgate({"api_tokens": NAMED["api_tokens"]})
    api = await _made(off, "olga2")
    for method in ("POST", "DELETE"):
        status, body = await _call(f"{api}/users/olga2/servers/gpu", method)
        assert status == 400 and body["message"] == "Named servers are not enabled.", body


@pytest.mark.both_servers
async def test_another_users_named_server_is_forbidden(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(NAMED)
    api = await _made(pg, "pia", "quin")
    status, _ = await _call(f"{api}/users/pia/servers/one", "POST")
    assert status in (201, 202)
    await _until(lambda: pg.control.spawner.status("pia/one").state == "running")
    async with Browser(pg.public_url) as bob:
        assert (await bob.login("quin")).status == 200
        token = xsrf_of(await (await bob.get("/hub/home")).text())
        hub = pg.public_url + "/hub/api"
        for method in ("POST", "DELETE"):
            async with bob.session.request(
                method, f"{hub}/users/pia/servers/one", headers={"X-XSRFToken": token}
            ) as response:
                assert response.status == 403, await response.text()
        # His own named server he may start, through the same API.
        async with bob.session.post(
            f"{hub}/users/quin/servers/mine", headers={"X-XSRFToken": token}
        ) as response:
            assert response.status in (201, 202), await response.text()
        # Through the edge: ada's named server is not his.
        response = await bob.get("/user/pia/one/api", allow_redirects=False)
        assert response.status == 403
    assert pg.control.spawner.status("pia/one").state == "running"


@pytest.mark.both_servers
async def test_edge_routes_each_server_of_one_user(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(NAMED)
    async with Browser(pg.public_url) as tom:
        assert (await tom.login("tom")).status == 200
        home = await tom.get("/hub/home")
        page = await home.text()
        assert "Named servers" in page and 'name="server_name"' in page
        # Start the default server and a named one from the home page's forms.
        response = await tom.post(
            "/hub/spawn/tom", {"_xsrf": xsrf_of(page), "server_name": "gpu"}, allow_redirects=False
        )
        assert response.status == 303
        assert response.headers["Location"].startswith("/hub/spawn-pending/tom/gpu")
        response = await tom.post("/hub/spawn", {"_xsrf": xsrf_of(page)}, allow_redirects=False)
        assert response.status == 303
        spawner = pg.control.spawner
        await _until(lambda: spawner.status("tom").state == "running")
        await _until(lambda: spawner.status("tom/gpu").state == "running")
        await _until(lambda: pg.table.get("/user/tom/gpu") is not None)
        seen = {}
        for path in ("/user/tom/lab", "/user/tom/gpu/lab", "/user/tom/gpu", "/user/tom/gpux/"):
            response = await tom.get(path, allow_redirects=False)
            assert response.status == 200, (path, await response.text())
            seen[path] = (await response.json())["pod"]
        assert seen == {
            "/user/tom/lab": "jupyter-tom",
            "/user/tom/gpu/lab": "jupyter-tom--gpu",
            "/user/tom/gpu": "jupyter-tom--gpu",
            "/user/tom/gpux/": "jupyter-tom",
        }
        page = await (await tom.get("/hub/home")).text()
        row = re.search(r'<tr data-server="gpu">.*?</tr>', page)
        assert row is not None and "/user/tom/gpu/" in row.group(0)
        assert 'action="/hub/stop/tom/gpu"' in row.group(0)
        # Stop the named one from its row: the default server stays, its paths with it.
        response = await tom.post(
            "/hub/stop/tom/gpu", {"_xsrf": xsrf_of(page)}, allow_redirects=False
        )
        assert response.status == 303
        await _until(lambda: pg.table.get("/user/tom/gpu") is None)
        response = await tom.get("/user/tom/lab", allow_redirects=False)
        assert (await response.json())["pod"] == "jupyter-tom"
    # The admin panel lists the named server under its user.
    assert spawner.status("tom/gpu").state in ("stopping", "stopped")


@pytest.mark.both_servers
async def test_a_stopped_named_server_is_remembered_until_removed(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(NAMED)
    spawner = pg.control.spawner
    async with Browser(pg.public_url) as rae:
        assert (await rae.login("rae", next_url="/hub/home")).status == 200
        api = pg.public_url + "/hub/api"
        xsrf = xsrf_of(await (await rae.get("/hub/home")).text())
        headers = {"X-XSRFToken": xsrf}

        async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            async with rae.session.request(
                method, api + path, headers=headers, json=body
            ) as response:
                raw = await response.read()
                ok = response.content_type == "application/json"
                return response.status, json.loads(raw) if ok else raw

        for server in ("one", "two"):
            status, body = await call("POST", f"/users/rae/servers/{server}")
            assert status in (201, 202), body
        await _until(lambda: spawner.status("rae/one").state == "running")
        status, _ = await call("DELETE", "/users/rae/servers/one")  # a stop, no remove
        assert status in (202, 204)
        await _until(lambda: spawner.status("rae/one").state == "stopped")
        # Stopped, still hers: listed on request, counted by the limit, in her record.
        status, model = await call("GET", "/users/rae")
        assert "one" not in model["servers"]
        status, model = await call("GET", "/users/rae?include_stopped_servers")
        assert (
            model["servers"]["one"]["stopped"] is True and model["servers"]["one"]["ready"] is False
        )
        status, body = await call("POST", "/users/rae/servers/three")
        assert status == 400 and "maximum of 2" in body["message"], body
        record = await pg.control.kube.get("configmaps", "podgate", names.record_name("rae"))
        assert {"server.one", "server.two"} <= set(record["data"])
        # Her link to it leads to its own spawn page, not the default server's.
        response = await rae.get("/user/rae/one/lab")
        assert response.url.path == "/hub/spawn/rae", response.url
        page = await response.text()
        assert 'action="/hub/spawn/rae/one"' in page, page[-2000:]
        home = await (await rae.get("/hub/home")).text()
        row = re.search(r'<tr data-server="one">.*?</tr>', home)
        assert row is not None and 'action="/hub/delete/rae/one"' in row.group(0)
        assert 'action="/hub/spawn/rae/one"' in row.group(0)
        # A running one cannot be deleted from the page; a stopped one can.
        refused = await rae.post("/hub/delete/rae/two", {"_xsrf": xsrf}, allow_redirects=False)
        assert refused.status == 400 and "Stop the server" in await refused.text()
        deleted = await rae.post("/hub/delete/rae/one", {"_xsrf": xsrf}, allow_redirects=False)
        assert deleted.status == 303
        status, model = await call("GET", "/users/rae?include_stopped_servers")
        assert set(model["servers"]) == {"two"}
        # remove: true forgets a running one as it stops.
        status, _ = await call("DELETE", "/users/rae/servers/two", {"remove": True})
        assert status in (202, 204)
        await _until(lambda: spawner.status("rae/two").state == "stopped")
        status, model = await call("GET", "/users/rae?include_stopped_servers")
        assert model["servers"] == {}
        status, body = await call("DELETE", "/users/rae/servers/two", {"remove": "yes"})
        assert status == 400 and "remove must be" in body["message"]


@pytest.mark.both_servers
async def test_the_built_in_culler_culls_each_named_server_on_its_own(
    make_podgate: MakePodgate,
) -> None:
    settings = {
        **NAMED,
        "culler": {"enabled": True, "timeout": 3.0, "every": 0.2},
        "auth": {"admins": ["root"]},
    }
    pg = await make_podgate(settings)
    spawner = pg.control.spawner
    api = await _made(pg, "sol")
    for server in ("quiet", "busy"):
        status, body = await _call(f"{api}/users/sol/servers/{server}", "POST")
        assert status in (201, 202), body
    await _until(lambda: spawner.status("sol/quiet").state == "running")
    await _until(lambda: spawner.status("sol/busy").state == "running")
    await _until(lambda: pg.table.get("/user/sol/busy") is not None)
    async with Browser(pg.public_url) as sol, Browser(pg.public_url) as root:
        assert (await sol.login("sol", next_url="/hub/home")).status == 200
        # The admin panel shows each named server in a row of its own, under its user.
        assert (await root.login("root", next_url="/hub/home")).status == 200
        panel = await (await root.get("/hub/admin?q=sol")).text()
        rows = re.findall(r'<tr data-user="([^"]+)"', panel)
        assert rows == ["sol", "sol/busy", "sol/quiet"], rows
        assert "?action=stop&amp;user=sol%2Fbusy&amp;" in panel, panel
        # Traffic to one named server only; the other idles out alone.
        for _ in range(120):  # 6 s at most
            response = await sol.get("/user/sol/busy/still-here")
            assert response.status == 200
            if spawner.status("sol/quiet").state == "stopped":
                break
            await asyncio.sleep(0.05)
        assert spawner.status("sol/quiet").state == "stopped"
        assert spawner.status("sol/busy").state == "running"
        # An admin stops a named server from the panel's confirm form.
        confirm = await root.get("/hub/admin/confirm?action=stop&user=sol/busy")
        page = await confirm.text()
        assert confirm.status == 200 and "sol/busy" in page
        done = await root.post(
            "/hub/admin/stop", {"user": "sol/busy", "_xsrf": xsrf_of(page)}, allow_redirects=False
        )
        assert done.status == 303
        await _until(lambda: spawner.status("sol/busy").state == "stopped")
        # Stopped, both are still hers: listed, each with Start.
        panel = await (await root.get("/hub/admin?q=sol")).text()
        assert re.findall(r'<tr data-user="([^"]+)"', panel) == ["sol", "sol/busy", "sol/quiet"]
        assert "?action=start&amp;user=sol%2Fquiet&amp;" in panel
        bad = await root.get("/hub/admin/confirm?action=stop&user=sol/Bad--name")
        assert bad.status == 400


def test_each_named_server_is_its_own_oauth_client_and_a_shared_id_is_refused() -> None:
    settings = SpawnerSettings(hub_api=True, hub_url="http://podgate.podgate.svc:8000")
    tokens = ServerTokens()
    pods = {
        key: pod_manifest(key, settings, None, f"token-of-{key.replace('/', '-')}-0123")
        for key in ("ada", "ada/gpu", "a-b", "a/b")
    }
    for pod in pods.values():
        tokens.observe("ADDED", pod, None)
    assert tokens.client_server("jupyterhub-user-ada") == "ada"
    assert tokens.client_server("jupyterhub-user-ada-gpu") == "ada/gpu"
    assert tokens.server_of("token-of-ada-gpu-0123") == "ada/gpu"
    assert tokens.user_of("token-of-ada-gpu-0123") == "ada"
    # User "a-b"'s default server and user "a"'s server "b" would share one client id.
    assert tokens.client_server("jupyterhub-user-a-b") is None
    tokens.observe("DELETED", pods["a/b"], None)
    assert tokens.client_server("jupyterhub-user-a-b") == "a-b"
    tokens.observe("DELETED", pods["ada/gpu"], None)
    assert tokens.client_server("jupyterhub-user-ada-gpu") is None
    assert tokens.server_of("token-of-ada-gpu-0123") is None
    assert tokens.has_server("ada")
