"""A user's pod that goes away or stops being Ready while in use: the user is never sent to it.

A real podgate (control plane, embedded kubesim) starts `frail_pod.py` as the
user's server. While the user is mid-download and has a WebSocket open, the
pod is deleted (as an eviction does), turns NotReady (its readiness probe
starts failing) or is OOM-killed by its memory limit. What the user must
notice: open streams and sockets end instead of hanging, the next request
goes to the spawn page (302 /hub/spawn/<name>) rather than to a dead
address, and a pod that recovers is routed again.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hub_kit import Browser

from podgate.assembly import Podgate

FRAIL_POD = Path(__file__).with_name("frail_pod.py")
PORT = 8888
USER = "ada"


def frail_settings(sick_dir: Path, memory_limit: str = "300Mi") -> dict[str, Any]:
    return {
        "spawner": {
            "image": "frail",
            "cmd": [sys.executable, str(FRAIL_POD)],
            "args": [str(PORT)],
            "jupyter_args": False,
            "port": PORT,
            "readiness_path": "ready",
            "env": {"FRAIL_SICK_DIR": str(sick_dir)},
            "resources": {"memory_limit": memory_limit},
            "stop_grace_seconds": 2,
        }
    }


class Kube:
    """The embedded kubesim's API, over HTTP with its token, as kubectl would use it."""

    def __init__(self, podgate: Podgate) -> None:
        cluster = podgate.cluster
        assert cluster is not None
        self.url = f"{cluster.url}/api/v1/namespaces/{podgate.config.spawner.namespace}/pods"
        self.headers = {"Authorization": f"Bearer {cluster.token}"}
        self.ssl: Any = False if cluster.tls else None
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()

    async def pods(self) -> list[dict[str, Any]]:
        async with self.session.get(self.url, headers=self.headers, ssl=self.ssl) as reply:
            assert reply.status == 200, await reply.text()
            return list((await reply.json())["items"])

    async def only_pod(self) -> dict[str, Any]:
        pods = await self.pods()
        assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
        return pods[0]

    async def delete(self, name: str) -> None:
        url = f"{self.url}/{name}"
        async with self.session.delete(url, headers=self.headers, ssl=self.ssl) as reply:
            assert reply.status == 200, await reply.text()


@pytest.fixture
def sick_dir() -> Iterator[Path]:
    """Where the test marks the pod sick: run as root, the pod has a user of its own,
    who cannot pass pytest's tmp_path (0700), so a directory it may pass."""
    path = Path(tempfile.mkdtemp(prefix="frail-sick-"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def kube_and_browser(
    make_podgate: Any, sick_dir: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Kube, Browser]]:
    podgate = await make_podgate(frail_settings(sick_dir, **getattr(request, "param", {})))
    kube = Kube(podgate)
    async with Browser(podgate.public_url) as browser:
        events = await browser.start_server(USER, seconds=20)
        assert events[-1].get("ready"), events
        try:
            yield kube, browser
        finally:
            await kube.close()


async def served_by(browser: Browser, seen: list[int] | None = None) -> str:
    """The pod's answer to the user's request, or "" when the user is not routed."""
    response = await browser.get(f"/user/{USER}/hello", allow_redirects=False)
    if seen is not None:
        seen.append(response.status)
    if response.status == 200:
        return await response.text()
    return ""


async def until_sent_to_spawn(browser: Browser, seconds: float) -> list[int]:
    """Every status the user saw until sent to the spawn page; fails after `seconds`."""
    seen: list[int] = []
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / 0.05) + 1):
        response = await browser.get(f"/user/{USER}/after", allow_redirects=False)
        seen.append(response.status)
        location = response.headers.get("Location", "")
        if response.status == 302 and location.startswith(f"/hub/spawn/{USER}"):
            return seen
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    raise AssertionError(f"not sent to the spawn page within {seconds} s: {seen[-5:]}")


async def until_routed(browser: Browser, seconds: float, seen: list[int]) -> str:
    """The pod's answer once the user is routed again ("" after `seconds`); statuses in `seen`."""
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / 0.05) + 1):
        answer = await served_by(browser, seen)
        if answer or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.05)
    return ""


class InUse:
    """A user mid-download and with a WebSocket open, as a notebook page is."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.stream: aiohttp.ClientResponse | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> InUse:
        self.stream = await self.browser.session.get(self.browser.url(f"/user/{USER}/stream"))
        assert self.stream.status == 200
        assert (await self.stream.content.readline()).startswith(b"chunk 0")
        self.ws = await self.browser.session.ws_connect(self.browser.url(f"/user/{USER}/ws"))
        await self.ws.send_str("still there?")
        assert (await self.ws.receive(timeout=5)).data == "still there?"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.stream is not None:
            self.stream.close()

    async def stream_ends(self, seconds: float) -> None:
        """The download stops (cut or finished) instead of hanging on a pod that is gone."""
        assert self.stream is not None
        async with asyncio.timeout(seconds):
            try:
                while await self.stream.content.readline():
                    pass
            except aiohttp.ClientPayloadError:
                pass  # cut mid-body: what a user's browser shows as a failed download

    async def websocket_closes(self, seconds: float) -> aiohttp.WSMessage:
        assert self.ws is not None
        async with asyncio.timeout(seconds):
            for _ in range(1000):  # bounded: frames already in flight, then the close
                msg = await self.ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    return msg
                if msg.type is aiohttp.WSMsgType.ERROR:
                    return msg
        raise AssertionError("the WebSocket kept receiving frames")


async def test_evicted_pod_in_use_sends_the_user_to_spawn(
    kube_and_browser: tuple[Kube, Browser],
) -> None:
    kube, browser = kube_and_browser
    assert (await served_by(browser)).startswith("frail:")
    pod = await kube.only_pod()
    async with InUse(browser) as in_use:
        await kube.delete(pod["metadata"]["name"])
        seen = await until_sent_to_spawn(browser, seconds=5)
        print(f"eviction: statuses until the spawn page {seen}")
        # Until the route went, the live pod answered: never a dead address (502/503).
        assert set(seen) <= {200, 302}, seen
        await in_use.websocket_closes(seconds=10)
        await in_use.stream_ends(seconds=10)
    for _ in range(100):  # the kubelet removes the pod once its process is gone
        if not await kube.pods():
            break
        await asyncio.sleep(0.05)
    assert await kube.pods() == []
    # Still no route once the pod is gone: the spawn page, not an error.
    await until_sent_to_spawn(browser, seconds=1)


async def test_pod_that_turns_not_ready_loses_its_route_and_gets_it_back(
    kube_and_browser: tuple[Kube, Browser], sick_dir: Path
) -> None:
    kube, browser = kube_and_browser
    before = await served_by(browser)
    assert before.startswith("frail:")
    sick = sick_dir / f"{USER}.sick"
    sick.touch()
    # The probe runs every 2 s and fails 3 times before the pod is NotReady.
    seen = await until_sent_to_spawn(browser, seconds=12)
    print(f"not ready: {len(seen)} polls until the spawn page, last {seen[-3:]}")
    assert set(seen) <= {200, 302}, seen
    seen.clear()
    pod = await kube.only_pod()
    assert pod["metadata"].get("deletionTimestamp") is None  # nobody deleted it
    sick.unlink()
    after = await until_routed(browser, seconds=8, seen=seen)
    # The same server process again: routed back, not restarted.
    assert after == before
    print(f"ready again: statuses until routed {seen}")
    assert set(seen) <= {200, 302}, seen


async def oom_while_in_use(browser: Browser) -> tuple[str, str, list[int]]:
    """The server takes more memory than its limit while the user streams and holds a socket.

    Returns what answered before, what answers once routed again, and every
    status the user saw from the moment the WebSocket and the stream ended.
    """
    before = await served_by(browser)
    assert before.startswith("frail:")
    seen: list[int] = []
    async with InUse(browser) as in_use:
        eat = await browser.session.post(browser.url(f"/user/{USER}/eat?mb=200"))
        await eat.read()
        await in_use.websocket_closes(seconds=10)
        await in_use.stream_ends(seconds=10)
        # restartPolicy OnFailure: the kubelet restarts the server; the user
        # reaches the new process (another pid), not the old one's address.
        after = await until_routed(browser, seconds=10, seen=seen)
    return before, after, seen


OOM = pytest.mark.parametrize("kube_and_browser", [{"memory_limit": "120Mi"}], indirect=True)


@OOM
async def test_pod_killed_for_memory_while_serving(
    kube_and_browser: tuple[Kube, Browser],
) -> None:
    kube, browser = kube_and_browser
    before, after, seen = await oom_while_in_use(browser)
    assert after.startswith("frail:") and after != before, (before, after)
    pod = await kube.only_pod()
    status = pod["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["reason"] == "OOMKilled", status
    assert status["restartCount"] == 1, status
    # A process killed outright is not announced: until the kubelet reports it
    # (its next status write, well under a second here) the edge still has the
    # route and answers 503 (the pod refused), never a hang or a 502. Once the
    # pod is NotReady the user is sent to the spawn page, then to the new process.
    print(f"oom: statuses until the restarted server answered {seen}")
    refused = seen.count(503)
    assert refused <= 20, seen  # 20 polls of >= 50 ms: under a second
    assert set(seen[refused:]) <= {200, 302} and 302 in seen, seen


@OOM
async def test_a_request_racing_an_unannounced_death_is_told_to_retry(
    kube_and_browser: tuple[Kube, Browser],
) -> None:
    """Between an OOM kill and the pod watch hearing of it, the route still points at the
    dead pod: the edge's 503 then says when to retry (and reloads itself), and the retry
    lands on the spawn page once the route is gone."""
    _, browser = kube_and_browser
    _, _, seen = await oom_while_in_use(browser)
    assert seen[0] in (302, 503), seen
    assert 302 in seen, seen  # the spawn page, not a dead address, once the watch knows


async def test_the_refused_page_asks_the_browser_to_retry() -> None:
    from edge.errors import UpstreamUnavailable, upstream_error_response

    response = upstream_error_response(UpstreamUnavailable("connection refused"))
    assert response.status == 503
    assert response.headers["Retry-After"] == "2"
    assert "http-equiv='refresh' content='2'" in response.text
