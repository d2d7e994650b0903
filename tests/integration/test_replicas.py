"""Two podgate replicas behind a round-robin TCP balancer behave as one podgate.

The cluster is kubesim running alone as a process, or the real API server
with a node agent (both_servers); two podgate processes run against it with
`cluster: {kind: kube}`, the same config and cookie secret,
echo pods, an API token, an admin, and the built-in culler enabled in both.
A small TCP balancer (tests/integration/tcp_balancer.py) stands in for the
Service: each new connection goes to the next replica. The browsers open a
fresh connection per request, so a user's consecutive requests land on
alternate replicas: signing in on one, spawning on the other, being routed
by both.

What users notice: they sign in, spawn and reach their server whichever
replica answers; WebSockets echo; the admin panel and /hub/api through
either replica show every user running; two starts of one user at once make
one pod; a stop through one replica unroutes the user on both; traffic seen
by one replica keeps the server from being culled by the other's culler,
while an idle server is culled; signing out at one replica, or an admin's
"sign out everywhere" through either, ends the user's sessions at both
within seconds; a user with no server who signed in at one replica is listed
by the other. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hub_kit import COOKIE_SECRET, ECHO_SPAWNER, EVENT_SOURCE, PASSWORD, Browser
from jupyter_kit import (
    ClusterAccess,
    KubeRest,
    PodgateProcess,
    eventually,
    pause_kubelet,
    start_podgate_process,
)
from tcp_balancer import Backend, RoundRobinBalancer

from control.activity import ACTIVITY_ANNOTATION, parse_activity
from control.manifests import POD_SELECTOR
from control.names import USER_ANNOTATION

NAMESPACE = "podgate"
ADMIN = "root"
API_TOKEN = "test-replicas-api-token-0123456789"
USERS = tuple(f"user{i}" for i in range(10))

pytestmark = pytest.mark.both_servers


class FreshConnectionBrowser(Browser):
    """A browser that opens a new connection for every request (no keep-alive),
    so behind the balancer each request goes to the next replica."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=30),
        )


@dataclass
class Deployment:
    replicas: tuple[PodgateProcess, PodgateProcess]
    balancer: RoundRobinBalancer
    kube: KubeRest
    cluster: ClusterAccess

    @property
    def url(self) -> str:
        return self.balancer.url


MakeDeployment = Callable[[float], Awaitable[Deployment]]


def replica_config(kubeconfig: Path, cull_timeout: float) -> dict[str, Any]:
    """The one config both replicas run (as one ConfigMap would give them)."""
    return {
        "listen": "127.0.0.1:0",
        "ops_listen": "127.0.0.1:0",
        "cluster": {"kind": "kube", "kubeconfig": str(kubeconfig)},
        "auth": {"kind": "dummy", "password": PASSWORD, "admins": [ADMIN]},
        "session": {"cookie_secrets": [COOKIE_SECRET]},
        "api_tokens": [{"name": "ops", "token": API_TOKEN, "scopes": ["admin"]}],
        "spawner": {**ECHO_SPAWNER, "namespace": NAMESPACE},
        "culler": {
            "enabled": True,
            "timeout": cull_timeout,
            "every": 0.5,
            "activity_every": 0.5,
        },
    }


@pytest.fixture
async def deploy(
    tmp_path: Path, cluster: ClusterAccess, kube: KubeRest
) -> AsyncIterator[MakeDeployment]:
    """Two ready replicas and the balancer in front; all stopped at the end."""
    async with AsyncExitStack() as stack:

        async def make(cull_timeout: float) -> Deployment:
            config = replica_config(cluster.kubeconfig, cull_timeout)
            started: list[PodgateProcess] = []

            async def end_all() -> None:
                await asyncio.gather(*(replica.end() for replica in started))

            stack.push_async_callback(end_all)
            for name in ("replica-a", "replica-b"):
                started.append(await start_podgate_process(config, tmp_path, name=name))
            await asyncio.gather(*(until_ready(replica) for replica in started))
            balancer = RoundRobinBalancer([Backend.of_url(r.public) for r in started])
            await balancer.start()
            stack.push_async_callback(balancer.close)
            return Deployment((started[0], started[1]), balancer, kube, cluster)

        yield make


async def until_ready(replica: PodgateProcess, seconds: float = 20.0) -> None:
    """/readyz says 200: its pod watch has listed (as the Service's readiness probe waits)."""
    async with aiohttp.ClientSession() as client:

        async def ready() -> bool:
            async with client.get(f"{replica.ops}/readyz") as response:
                return response.status == 200

        await eventually(ready, seconds, f"{replica.ops}/readyz says 200")


async def user_pods(kube: KubeRest) -> dict[str, str]:
    """user -> pod name, failing on a second pod for one user."""
    found: dict[str, str] = {}
    for pod in await kube.pods(NAMESPACE, POD_SELECTOR):
        user = pod["metadata"]["annotations"][USER_ANNOTATION]
        assert user not in found, f"two pods for {user}"
        found[user] = pod["metadata"]["name"]
    return found


async def routed_by_both(browser: Browser, user: str, seconds: float = 10.0) -> None:
    """Two requests in a row (so one per replica) both reach the user's own pod."""

    async def both() -> bool:
        for _ in range(2):
            response = await browser.get(f"/user/{user}/hello", allow_redirects=False)
            if response.status != 200:
                return False
            assert (await response.json())["pod"] == f"jupyter-{user}"
        return True

    await eventually(both, seconds, f"{user} routed by both replicas")


async def api_get(url: str, path: str) -> Any:
    headers = {"Authorization": f"token {API_TOKEN}"}
    async with (
        aiohttp.ClientSession(
            headers=headers, connector=aiohttp.TCPConnector(force_close=True)
        ) as client,
        client.get(url + path, timeout=aiohttp.ClientTimeout(total=10)) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


async def echo_backend(name: bytes) -> asyncio.Server:
    """A backend that reads until the client's EOF, answers name + what it read, closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received = await reader.read()
        writer.write(name + b":" + received)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def through(balancer: RoundRobinBalancer, data: bytes) -> bytes:
    """Send `data`, half-close, and read the answer to EOF (bounded)."""
    port = int(balancer.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


# A replica whose pod watch has not yet seen a pod another replica created a few
# milliseconds ago answers 400 (nothing starting, as far as it knows); the spawn
# page's script reconnects, and so does this client.
NOT_SEEN_YET = "has no server starting or running"


async def progress_to_ready(browser: Browser, user: str, tries: int = 5) -> list[dict[str, Any]]:
    """The user's progress events, ending ready (bounded: `tries` streams of 30 s at most)."""
    for _ in range(tries):
        path = await browser.progress_path(user)
        async with browser.session.get(
            browser.url(path), headers=EVENT_SOURCE, timeout=aiohttp.ClientTimeout(total=30)
        ) as response:
            if response.status == 400 and NOT_SEEN_YET in await response.text():
                await asyncio.sleep(0.2)
                continue
            assert response.status == 200, await response.text()
            events = [
                json.loads(line[6:])
                async for line in response.content
                if line.startswith(b"data: ")
            ]
        assert events and events[-1].get("ready") is True, (user, events)
        return events
    raise AssertionError(f"no progress stream for {user} in {tries} tries")


async def sign_in_and_spawn(browser: Browser, user: str) -> list[dict[str, Any]]:
    """What a person does: sign in (which opens the spawn page), then watch progress."""
    response = await browser.login(user)
    assert response.status == 200, await response.text()
    return await progress_to_ready(browser, user)


async def server_ready(replica: PodgateProcess, user: str) -> bool:
    """Whether `replica`'s API says the user's server is ready (404, no such user: no)."""
    headers = {"Authorization": f"token {API_TOKEN}"}
    async with (
        aiohttp.ClientSession(headers=headers) as client,
        client.get(
            f"{replica.ops}/hub/api/users/{user}", timeout=aiohttp.ClientTimeout(total=10)
        ) as response,
    ):
        if response.status == 404:
            return False
        assert response.status == 200, await response.text()
        model = await response.json()
        return bool(model["servers"].get("", {}).get("ready", False))


async def test_the_balancer_alternates_backends_and_passes_half_closes() -> None:
    servers = [await echo_backend(b"a"), await echo_backend(b"b")]
    try:
        backends = [Backend("127.0.0.1", s.sockets[0].getsockname()[1]) for s in servers]
        async with RoundRobinBalancer(backends) as balancer:
            answers = [await through(balancer, f"hello {i}".encode()) for i in range(3)]
            assert answers == [b"a:hello 0", b"b:hello 1", b"a:hello 2"]
            assert balancer.picks == [0, 1, 0] and balancer.failed == 0
            # A backend that is down: the client's connection is closed at once.
            servers[1].close()
            await servers[1].wait_closed()
            assert await through(balancer, b"lost") == b""
            assert balancer.failed == 1
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


async def test_ten_users_sign_in_spawn_and_are_served_by_both_replicas(
    deploy: MakeDeployment,
) -> None:
    deployment = await deploy(3600)
    balancer = deployment.balancer
    browsers = {user: FreshConnectionBrowser(deployment.url) for user in USERS}
    admin = FreshConnectionBrowser(deployment.url)
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    try:
        # One user at a time, so each user's requests alternate between the replicas.
        for user, browser in browsers.items():
            before = balancer.served()
            await sign_in_and_spawn(browser, user)
            after = balancer.served()
            assert after[0] > before[0] and after[1] > before[1], (user, before, after)
            await routed_by_both(browser, user)
        assert set(await user_pods(deployment.kube)) == set(USERS)

        # WebSockets through the balancer, all open at once: half on each replica.
        for user, browser in browsers.items():
            ws = await browser.session.ws_connect(
                browser.url(f"/user/{user}/ws"), timeout=aiohttp.ClientWSTimeout(ws_close=2)
            )
            sockets.append(ws)
        for user, ws in zip(USERS, sockets, strict=True):
            await ws.send_str(f"hello from {user}")
        for user, ws in zip(USERS, sockets, strict=True):
            reply = await ws.receive(timeout=5)
            assert reply.type == aiohttp.WSMsgType.TEXT, reply
            assert reply.data == f"hello from {user}"

        # The admin panel, asked twice (once per replica), shows every user running.
        assert (await admin.login(ADMIN, next_url="/hub/home")).status == 200
        for _ in range(2):
            page = await admin.get("/hub/admin")
            assert page.status == 200, await page.text()
            text = await page.text()
            for user in USERS:
                row = re.search(rf'<tr data-user="{user}".*?</tr>', text, re.S)
                assert row is not None and "Running" in row.group(0), user

        # The REST API through either replica lists every user's server as ready.
        for _ in range(2):
            listed = await api_get(deployment.url, "/hub/api/users?limit=200")
            servers = {u["name"]: u["servers"] for u in listed}
            for user in USERS:
                assert servers[user][""]["ready"] is True, (user, servers.get(user))
        assert balancer.failed == 0
    finally:
        for ws in sockets:
            await ws.close()
        for browser in (*browsers.values(), admin):
            await browser.close()


async def test_two_starts_at_once_make_one_pod_and_a_stop_unroutes_on_both(
    deploy: MakeDeployment,
) -> None:
    deployment = await deploy(3600)
    a, b = deployment.replicas
    tabs = [FreshConnectionBrowser(deployment.url) for _ in range(2)]
    try:
        for tab in tabs:
            assert (await tab.login("zed", next_url="/hub/home")).status == 200
        # Two tabs show the spawn page, then press Start at the same moment: one
        # connection per replica.
        pages = [await tab.get("/hub/spawn/zed", allow_redirects=False) for tab in tabs]
        first = len(deployment.balancer.picks)
        started = await asyncio.gather(
            *(tab.press_start(page) for tab, page in zip(tabs, pages, strict=True))
        )
        assert sorted(deployment.balancer.picks[first:]) == [0, 1]
        for answer in started:
            assert answer.status == 303, (answer.status, await answer.text())
        await progress_to_ready(tabs[0], "zed")
        assert await user_pods(deployment.kube) == {"zed": "jupyter-zed"}
        await routed_by_both(tabs[1], "zed")

        # Stop through replica A's API; neither replica routes zed any more.
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"token {API_TOKEN}"}) as client,
            client.delete(f"{a.ops}/hub/api/users/zed/server") as stopped,
        ):
            assert stopped.status in (202, 204), await stopped.text()
        # zed's cookie, sent to each replica directly (the jar keys cookies by host, not port).
        direct = tabs[0]

        async def unrouted_on(replica: PodgateProcess) -> bool:
            direct.base_url = replica.public
            response = await direct.get("/user/zed/hello", allow_redirects=False)
            return response.status == 302 and response.headers["Location"].startswith(
                "/hub/spawn/zed"
            )

        for replica in (a, b):
            await eventually(
                lambda r=replica: unrouted_on(r), 10, f"{replica.public} no longer routes zed"
            )

        async def pod_gone() -> bool:
            return await user_pods(deployment.kube) == {}

        await eventually(pod_gone, 15, "zed's pod deleted")
    finally:
        for browser in tabs:
            await browser.close()


CULL_TIMEOUT = 3.0


async def test_traffic_at_one_replica_keeps_a_server_from_either_culler(
    deploy: MakeDeployment,
) -> None:
    deployment = await deploy(CULL_TIMEOUT)
    a, b = deployment.replicas
    busy, idle = FreshConnectionBrowser(deployment.url), FreshConnectionBrowser(deployment.url)
    stop = asyncio.Event()
    try:
        for user, browser in (("busy", busy), ("idle", idle)):
            await sign_in_and_spawn(browser, user)
        # From now on busy's traffic goes to replica A only.
        busy.base_url = a.public
        seen: list[int] = []

        async def keep_busy() -> None:
            for _ in range(200):
                response = await busy.get("/user/busy/still-here", allow_redirects=False)
                seen.append(response.status)
                try:
                    await asyncio.wait_for(stop.wait(), 0.3)
                    return
                except TimeoutError:
                    pass

        traffic = asyncio.create_task(keep_busy(), name="busy-user")
        try:

            async def idle_culled() -> bool:
                return not any([await server_ready(r, "idle") for r in (a, b)])

            await eventually(idle_culled, CULL_TIMEOUT + 10, "the idle server culled")
            # Past the timeout again, with both cullers running every half second.
            await asyncio.sleep(CULL_TIMEOUT + 1.5)
            pods = {
                pod["metadata"]["annotations"][USER_ANNOTATION]: pod
                for pod in await deployment.kube.pods(NAMESPACE, POD_SELECTOR)
            }
            for replica in (a, b):
                assert await server_ready(replica, "busy"), replica.ops
        finally:
            stop.set()
            await traffic
        assert seen and set(seen) == {200}, seen
        busy_pod = pods["busy"]["metadata"]
        assert "deletionTimestamp" not in busy_pod, busy_pod
        # Replica B learnt of A's traffic only through the pod annotation.
        written = parse_activity(busy_pod["annotations"].get(ACTIVITY_ANNOTATION))
        assert written is not None and time.time() - written < 3, busy_pod["annotations"]
        busy.base_url = b.public
        response = await busy.get("/user/busy/still-here", allow_redirects=False)
        assert response.status == 200
    finally:
        stop.set()
        await busy.close()
        await idle.close()


async def test_the_progress_stream_at_the_other_replica_follows_a_starting_server(
    deploy: MakeDeployment,
) -> None:
    deployment = await deploy(3600)
    a, b = deployment.replicas
    # Pods stay starting (as a real image pull would keep them) while the kubelet is paused.
    await pause_kubelet(deployment.cluster, deployment.kube, True)
    browser = FreshConnectionBrowser(a.public)
    try:
        assert (await browser.login("ada", next_url="/hub/home")).status == 200
        page = await browser.start("ada")
        assert page.status == 303, page.status

        async def pending_at_b() -> bool:
            status, _ = await deployment.kube.call(
                "GET", f"/api/v1/namespaces/{NAMESPACE}/pods/jupyter-ada"
            )
            return status == 200 and not await server_ready(b, "ada")

        await eventually(pending_at_b, 10, "ada's pod created and not ready")
        for label, replica in (("the starting replica", a), ("the other replica", b)):
            browser.base_url = replica.public
            path = await browser.progress_path("ada")
            async with browser.session.get(
                browser.url(path), headers=EVENT_SOURCE, timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                assert response.status == 200, (label, await response.text())
                first = await asyncio.wait_for(response.content.readline(), 5)
                assert first.startswith(b"data: "), first
        # The other replica's stream follows the pod to the end once it can start.
        browser.base_url = b.public
        path = await browser.progress_path("ada")
        async with browser.session.get(
            browser.url(path), headers=EVENT_SOURCE, timeout=aiohttp.ClientTimeout(total=20)
        ) as response:
            assert response.status == 200
            await pause_kubelet(deployment.cluster, deployment.kube, False)
            events = [
                json.loads(line[6:])
                async for line in response.content
                if line.startswith(b"data: ")
            ]
        assert events[-1].get("ready") is True, events
        assert events[-1]["url"] == "/user/ada/"
    finally:
        await pause_kubelet(deployment.cluster, deployment.kube, False)
        await browser.close()


# A sign-out reaches the other replica through one watch event of the user's record.
SIGN_OUT_SECONDS = 5.0


def session_cookie(browser: Browser) -> str:
    for morsel in browser.session.cookie_jar:
        if morsel.key == "podgate-session":
            return morsel.value
    raise AssertionError("the browser holds no session cookie")


async def cookie_reaches(replica: PodgateProcess, cookie: str, path: str) -> bool:
    """Whether `cookie` alone (a copy of it, as in another browser) gets `path` answered 200."""
    async with (
        aiohttp.ClientSession(cookies={"podgate-session": cookie}) as client,
        client.get(replica.public + path, allow_redirects=False) as response,
    ):
        await response.read()
        return response.status == 200


async def refused_within(replica: PodgateProcess, cookie: str, user: str, seconds: float) -> None:
    """Poll until neither the hub nor the user's pod takes `cookie` at `replica` (bounded)."""

    async def refused() -> bool:
        hub = await cookie_reaches(replica, cookie, "/hub/home")
        pod = await cookie_reaches(replica, cookie, f"/user/{user}/hello")
        return not hub and not pod

    await eventually(refused, seconds, f"{user}'s old cookie refused at {replica.public}")


async def test_logout_at_one_replica_ends_the_session_at_the_other(
    deploy: MakeDeployment,
) -> None:
    deployment = await deploy(3600)
    a, b = deployment.replicas
    browser = FreshConnectionBrowser(deployment.url)
    try:
        await sign_in_and_spawn(browser, "eve")
        await routed_by_both(browser, "eve")
        copy = session_cookie(browser)
        for replica in (a, b):
            assert await cookie_reaches(replica, copy, "/user/eve/hello"), replica.public
        # A WebSocket open at replica B when she signs out at A.
        holder = aiohttp.ClientSession(cookies={"podgate-session": copy})
        ws = await holder.ws_connect(
            f"{b.public}/user/eve/ws", timeout=aiohttp.ClientWSTimeout(ws_close=2)
        )
        browser.base_url = a.public
        xsrf = await browser.xsrf("/hub/home")
        signed_out = await browser.post("/hub/logout", {"_xsrf": xsrf}, allow_redirects=False)
        assert signed_out.status == 303
        at = time.monotonic()
        # At once where she signed out (its own write), at the other replica within a
        # watch event: polled, bounded.
        assert not await cookie_reaches(a, copy, "/user/eve/hello")
        await refused_within(b, copy, "eve", SIGN_OUT_SECONDS)
        print(f"logout at A: session refused at B {time.monotonic() - at:.3f} s after")
        closing = await ws.receive(timeout=SIGN_OUT_SECONDS)
        assert closing.type == aiohttp.WSMsgType.CLOSE, closing
        assert (closing.data, closing.extra) == (1001, "session ended"), closing
        print(f"logout at A: WebSocket at B closed {time.monotonic() - at:.3f} s after")
        # Signing in again works at both.
        browser.base_url = deployment.url
        assert (await browser.login("eve", next_url="/hub/home")).status == 200
        await routed_by_both(browser, "eve")
    finally:
        if "holder" in locals():
            await holder.close()
        await browser.close()


async def test_an_admin_signs_a_user_out_everywhere_through_either_replica(
    deploy: MakeDeployment,
) -> None:
    deployment = await deploy(3600)
    a, b = deployment.replicas
    tabs = [FreshConnectionBrowser(deployment.url) for _ in range(2)]
    try:
        await sign_in_and_spawn(tabs[0], "fay")
        assert (await tabs[1].login("fay", next_url="/hub/home")).status == 200
        copies = [session_cookie(tab) for tab in tabs]
        # The admin's call goes to replica B's ops port; both replicas must refuse both cookies.
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"token {API_TOKEN}"}) as client,
            client.delete(f"{b.ops}/hub/api/users/fay/sessions") as answer,
        ):
            assert answer.status == 204, await answer.text()
        for replica in (b, a):
            for copy in copies:
                await refused_within(replica, copy, "fay", SIGN_OUT_SECONDS)
        # The server keeps running; fay signs in again and reaches it through both.
        assert set(await user_pods(deployment.kube)) == {"fay"}
        assert (await tabs[0].login("fay", next_url="/hub/home")).status == 200
        await routed_by_both(tabs[0], "fay")
    finally:
        for tab in tabs:
            await tab.close()


async def test_a_user_with_no_server_signed_in_at_one_replica_is_listed_by_the_other(
    deploy: MakeDeployment,
) -> None:
    deployment = await deploy(3600)
    a, b = deployment.replicas
    browser = FreshConnectionBrowser(a.public)
    try:
        assert (await browser.login("gus", next_url="/hub/home")).status == 200
        headers = {"Authorization": f"token {API_TOKEN}"}

        async def listed_at_b() -> bool:
            async with (
                aiohttp.ClientSession(headers=headers) as client,
                client.get(f"{b.ops}/hub/api/users/gus") as response,
            ):
                return response.status == 200

        await eventually(listed_at_b, SIGN_OUT_SECONDS, "gus known at replica B")
        listed = await api_get(b.ops, "/hub/api/users")
        gus = next(u for u in listed if u["name"] == "gus")
        assert gus["servers"] == {}
        assert await user_pods(deployment.kube) == {}
    finally:
        await browser.close()
