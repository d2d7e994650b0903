"""Two podgate replicas on one cluster behave as one: shared sessions, one pod per user.

Both run the real assembly against the same cluster (kind kube, a kubeconfig
file): kubesim, and the real API server (both_servers); they share nothing
but the cookie secret and Kubernetes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hub_kit import Browser
from kube_servers import RealServer

from control.manifests import POD_SELECTOR
from kubesim.cluster import SimCluster

pytestmark = pytest.mark.both_servers


async def _replicas(make_podgate, cluster: SimCluster | RealServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace="podgate")
    settings = {"cluster": {"kind": "kube", "kubeconfig": str(kubeconfig)}}
    return await make_podgate(settings), await make_podgate(settings)


async def _until_routed(browser: Browser, path: str, seconds: float = 15.0) -> dict:
    async with asyncio.timeout(seconds):
        while True:
            response = await browser.get(path, allow_redirects=False)
            if response.status == 200:
                return await response.json()
            await asyncio.sleep(0.1)


async def test_both_replicas_starting_one_user_make_one_pod(
    make_podgate, cluster: SimCluster | RealServer, kube, tmp_path: Path
) -> None:
    first, second = await _replicas(make_podgate, cluster, tmp_path)
    async with Browser(first.public_url) as one, Browser(second.public_url) as two:
        # Signing in lands on /user/ada/, which starts the server: both at once,
        # each through its own replica.
        logged_in = await asyncio.gather(one.login("ada"), two.login("ada"))
        assert [r.status for r in logged_in] == [200, 200]
        events_one, events_two = await asyncio.gather(one.progress("ada"), two.progress("ada"))
        assert events_one[-1].get("ready"), events_one
        assert events_two[-1].get("ready"), events_two
        pods = await kube.list("pods", "podgate", label_selector=POD_SELECTOR)
        assert [p["metadata"]["name"] for p in pods.items] == ["jupyter-ada"]
        # Each replica routes the user from its own watch, to the same pod.
        assert (await _until_routed(one, "/user/ada/x"))["pod"] == "jupyter-ada"
        assert (await _until_routed(two, "/user/ada/x"))["pod"] == "jupyter-ada"


async def test_a_session_from_one_replica_is_good_at_the_other(
    make_podgate, cluster: SimCluster | RealServer, tmp_path: Path
) -> None:
    first, second = await _replicas(make_podgate, cluster, tmp_path)
    async with Browser(first.public_url) as browser:
        events = await browser.start_server("bob")
        assert events[-1].get("ready"), events
        # The same cookie jar, now pointed at the other replica: no new login.
        browser.base_url = second.public_url
        echoed = await _until_routed(browser, "/user/bob/lab")
        assert echoed["pod"] == "jupyter-bob"
        home = await browser.get("/hub/home")
        assert home.status == 200
        assert "Signed in as" in await home.text()
