"""Killing podgate while servers are starting leaves no duplicate pod and no orphan claim.

The cluster that outlives the ingress pod is kubesim running alone as a
process, or the real API server with a node agent (both_servers); podgate
runs against it as a process with `cluster: {kind: kube}`, a fixed cookie
secret, echo pods and storage, so each user gets a PersistentVolumeClaim.
Three users run and keep clicking; five more start at once and podgate is
SIGKILLed while those starts are in flight, each caught at a different step
(the kubelet is paused and the API refuses creates with 429s, so the steps
are deterministic, not a matter of timing):

- two whose pod exists but is not running yet (claim and pod made),
- one whose claim exists and whose pod create was refused (claim, no pod),
- two whose claim create was refused (nothing made).

After the restart (the same config, the same address): /readyz only after
the relist, the running users routed again with their old cookies and their
pods untouched; each interrupted user has at most one pod and at most one
claim named for them, and no claim belongs to nobody. Once the kubelet runs
again each of the five opens /hub/spawn/<name> (pressing Start where nothing
runs) and reaches a running server, in the very pod made before the kill
where there was one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hub_kit import Browser
from jupyter_kit import (
    ClusterAccess,
    KubeRest,
    KubesimProcess,
    PodgateProcess,
    eventually,
    free_port,
    pause_kubelet,
    start_podgate_process,
)
from test_restart_recovery import (
    NAMESPACE,
    _all_answered,
    _all_refused,
    keep_busy,
    podgate_config,
    readiness_until_ready,
    user_pods,
)

from control.manifests import BASE_LABELS, POD_SELECTOR
from control.names import USER_ANNOTATION, USER_LABEL, pod_name, pvc_name, user_label

RUNNING = ("ada", "grace", "linus")  # running before the kill, busy through it
POD_MADE = ("barbara", "donald")  # claim and pod made, the pod not running yet
CLAIM_MADE = "edsger"  # claim made, pod create refused
NOTHING_MADE = ("frances", "ken")  # claim create refused
INTERRUPTED = (*POD_MADE, CLAIM_MADE, *NOTHING_MADE)
CLAIMS_PATH = f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims"
# Creates refused with a 429 and a long Retry-After: the spawner waits it out,
# so these starts are still under way (not failed) when podgate dies.
REFUSED_CREATES = 100
REFUSE_CREATES = {"errors": {"create": {"code": 429, "count": REFUSED_CREATES, "retry_after": 10}}}

pytestmark = pytest.mark.both_servers


def mid_spawn_config(kubeconfig: Path, port: int) -> dict[str, Any]:
    config = podgate_config(kubeconfig, port)
    config["spawner"] = {**config["spawner"], "storage": {"size": "1Gi"}}
    # Activity is written to pod annotations once an hour here, so a changed
    # resourceVersion can only mean the restart touched the pod.
    config["culler"] = {"activity_every": 3600}
    return config


async def user_claims(kube: KubeRest) -> dict[str, str]:
    """user -> claim name, for every claim in the namespace; fails on one nobody owns."""
    status, body = await kube.call("GET", CLAIMS_PATH)
    assert status == 200, body
    found: dict[str, str] = {}
    for claim in body["items"]:
        meta = claim["metadata"]
        labels = meta.get("labels") or {}
        user = (meta.get("annotations") or {}).get(USER_ANNOTATION)
        assert user is not None, f"claim {meta['name']} names no user"
        assert labels.items() >= BASE_LABELS.items(), f"claim {meta['name']} not podgate's"
        assert labels.get(USER_LABEL) == user_label(user), meta
        assert meta["name"] == pvc_name(user), f"claim {meta['name']} not named for {user}"
        assert user not in found, f"two claims for {user}"
        found[user] = meta["name"]
    return found


@contextlib.asynccontextmanager
async def claim_watch(sim: KubesimProcess) -> AsyncIterator[aiohttp.ClientResponse]:
    """An open watch on podgate's claims (open before any latency is injected)."""
    async with (
        aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {sim.token}"},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as client,
        client.get(
            sim.url.rstrip("/") + CLAIMS_PATH,
            params={"watch": "1", "labelSelector": POD_SELECTOR},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        yield response


async def until_added(watch: aiohttp.ClientResponse, name: str, seconds: float) -> None:
    """Read the watch until it reports `name` ADDED (at most `seconds`)."""
    async with asyncio.timeout(seconds):
        async for line in watch.content:
            if not line.strip():
                continue
            event = json.loads(line)
            if event["type"] == "ADDED" and event["object"]["metadata"]["name"] == name:
                return
    raise AssertionError(f"the watch ended before {name} was added")


async def creates_refused(kube: KubeRest) -> int:
    status, body = await kube.call("GET", "/kubesim/faults")
    assert status == 200, body
    left = (body["errors"].get("create") or {}).get("count")
    return REFUSED_CREATES - (left if left is not None else 0)


async def start_without_waiting(browser: Browser, user: str) -> asyncio.Task[Any]:
    """Sign in, then press Start in the background (it answers once the pod exists)."""
    signed_in = await browser.login(user, next_url="/hub/home", allow_redirects=False)
    assert signed_in.status == 303, signed_in.status
    return asyncio.create_task(browser.start(user), name=f"spawn-{user}")


async def reaches_own_pod(browser: Browser, user: str) -> bool:
    response = await browser.get(f"/user/{user}/", allow_redirects=False)
    return response.status == 200 and (await response.json())["pod"] == pod_name(user)


@pytest.mark.kubesim_only
async def test_sigkill_mid_spawn_leaves_no_duplicate_pod_nor_orphan_claim_and_every_start_ends(
    tmp_path: Path, kubesim: KubesimProcess, kube: KubeRest
) -> None:
    sim = kubesim
    config = mid_spawn_config(sim.kubeconfig, free_port())
    first = await start_podgate_process(config, tmp_path, name="podgate-first")
    second: PodgateProcess | None = None
    browsers = {user: Browser(first.public) for user in (*RUNNING, *INTERRUPTED)}
    spawning: list[asyncio.Task[Any]] = []
    stop, seen = asyncio.Event(), {user: Counter[str]() for user in RUNNING}
    load: list[asyncio.Task[None]] = []
    try:
        for user in RUNNING:
            assert (await browsers[user].start_server(user))[-1]["ready"] is True
        before = await user_pods(kube)
        assert set(before) == set(RUNNING)
        load = [
            asyncio.create_task(keep_busy(browsers[u], u, stop, seen[u]), name=f"load-{u}")
            for u in RUNNING
        ]
        await eventually(_all_answered(seen), 10, "each running user's requests answered")

        # Five starts at once, each held at its own step.
        await kube.set_faults({"kubelet_paused": True})
        for user in POD_MADE:  # signed in, sent on to the pending page once the pod exists
            pending = await browsers[user].login(user)
            assert pending.status == 200 and "/hub/spawn-pending/" in pending.url.path, user
        async with claim_watch(sim) as watch:
            # The pod create after the claim sits 2 s in the API server: long
            # enough to have it refused once the claim is seen.
            await kube.set_faults({"latency_ms": 2000})
            spawning.append(await start_without_waiting(browsers[CLAIM_MADE], CLAIM_MADE))
            await until_added(watch, pvc_name(CLAIM_MADE), 10)
            await kube.set_faults({"latency_ms": 0, **REFUSE_CREATES})
        for user in NOTHING_MADE:
            spawning.append(await start_without_waiting(browsers[user], user))

        async def all_in_flight() -> bool:
            pods = await user_pods(kube)
            return set(pods) == {*RUNNING, *POD_MADE} and await creates_refused(kube) >= 3

        await eventually(all_in_flight, 10, "two pods made, three creates refused")
        pods_made = await user_pods(kube)
        assert set(await user_claims(kube)) == {*RUNNING, *POD_MADE, CLAIM_MADE}

        assert await first.signal_and_wait(signal.SIGKILL, 10) == -signal.SIGKILL
        await eventually(_all_refused(seen), 10, "requests fail once the proxy is gone")
        stop.set()
        await asyncio.gather(*load)
        for user in RUNNING:
            assert set(seen[user]) <= {"200", "connection error"}, seen[user]
        # Spawn pages still waiting for a pod die with the process.
        ended = await asyncio.wait_for(asyncio.gather(*spawning, return_exceptions=True), 10)
        for user, outcome in zip((CLAIM_MADE, *NOTHING_MADE), ended, strict=True):
            assert isinstance(outcome, aiohttp.ClientError), (user, outcome)

        # The API is well again; the kubelet stays paused through the relist.
        await kube.set_faults({"reset": True, "kubelet_paused": True})
        second = await start_podgate_process(config, tmp_path, name="podgate-second")
        assert second.public == first.public
        await readiness_until_ready(second.ops, 30)

        for user in RUNNING:  # old cookies, no new login
            response = await browsers[user].get(f"/user/{user}/", allow_redirects=False)
            assert response.status == 200, (user, response.status, response.headers)
            assert (await response.json())["pod"] == before[user]["name"]
        after_relist = await user_pods(kube)  # fails on two pods for one user
        assert after_relist == pods_made, "the relist touched, added or removed a pod"
        assert set(await user_claims(kube)) == {*RUNNING, *POD_MADE, CLAIM_MADE}

        # Pods made before the kill are starting: their users wait on the pending
        # page, whose progress stream follows a start this process did not make.
        following: dict[str, asyncio.Task[list[dict[str, Any]]]] = {}
        for user in POD_MADE:
            page = await browsers[user].get(f"/hub/spawn/{user}?next=%2Fuser%2F{user}%2F")
            assert page.status == 200 and "/hub/spawn-pending/" in page.url.path, user
            following[user] = asyncio.create_task(browsers[user].progress(user, 20))
            spawning.append(following[user])

        # The kubelet runs again: every interrupted user gets a running server.
        await kube.set_faults({"kubelet_paused": False})
        for user in (CLAIM_MADE, *NOTHING_MADE):
            page = await browsers[user].start(user, next_url=f"/user/{user}/")
            assert page.status == 303, (user, page.status, await page.text())
            following[user] = asyncio.create_task(browsers[user].progress(user, 20))
            spawning.append(following[user])
        for user in INTERRUPTED:
            events = await asyncio.wait_for(following[user], 25)
            assert events and events[-1].get("ready") is True, (user, events)
            assert await reaches_own_pod(browsers[user], user), user

        final = await user_pods(kube)
        assert set(final) == {*RUNNING, *INTERRUPTED}
        for user in POD_MADE:  # joined the pod made before the kill, no new one
            assert final[user]["uid"] == pods_made[user]["uid"], user
        for user in RUNNING:
            assert final[user] == before[user], user
        claims = await user_claims(kube)
        assert claims == {user: pvc_name(user) for user in (*RUNNING, *INTERRUPTED)}
        assert await second.signal_and_wait(signal.SIGTERM, 20) == 0
        assert "Traceback" not in second.log.read_text(errors="replace")
    finally:
        stop.set()
        for task in (*load, *spawning):
            task.cancel()
        await asyncio.gather(*load, *spawning, return_exceptions=True)
        for browser in browsers.values():
            await browser.close()
        if second is not None:
            await second.end()
        await first.end()


BROKEN_IMAGE = "no-such-program-podgate:2"  # kubesim's kubelet cannot pull it


async def image_pull_failing(kube: KubeRest, user: str) -> bool:
    """The cluster itself shows the pod's image failing to pull."""
    for pod in await kube.pods(NAMESPACE, POD_SELECTOR):
        if pod["metadata"]["annotations"][USER_ANNOTATION] != user:
            continue
        for status in pod.get("status", {}).get("containerStatuses") or ():
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff"):
                return True
    return False


async def test_a_start_that_fails_for_good_after_the_restart_is_told_as_a_failure(
    tmp_path: Path, cluster: ClusterAccess, kube: KubeRest
) -> None:
    config = mid_spawn_config(cluster.kubeconfig, free_port())
    config["spawner"]["image"] = BROKEN_IMAGE
    first = await start_podgate_process(config, tmp_path, name="podgate-first")
    second: PodgateProcess | None = None
    browser = Browser(first.public)
    try:
        await pause_kubelet(cluster, kube, True)
        pending = await browser.login("ada")  # the pod is made, not pulled yet
        assert pending.status == 200 and "/hub/spawn-pending/" in pending.url.path
        assert set(await user_pods(kube)) == {"ada"}
        assert await first.signal_and_wait(signal.SIGKILL, 10) == -signal.SIGKILL

        second = await start_podgate_process(config, tmp_path, name="podgate-second")
        await readiness_until_ready(second.ops, 30)
        await pause_kubelet(cluster, kube, False)
        await eventually(lambda: image_pull_failing(kube, "ada"), 10, "the pull fails")

        # What ada sees: the failure in words, as without a restart.
        page = await browser.get("/hub/spawn/ada?next=%2Fuser%2Fada%2F")
        assert page.status in (200, 503), page.status
        try:
            events = await browser.progress("ada", 8)
        except TimeoutError:
            raise AssertionError("the progress stream never ended: ada waits for ever") from None
        assert events[-1].get("failed") is True, events
        assert "the image" in events[-1]["message"], events
    finally:
        await browser.close()
        if second is not None:
            await second.end()
        await first.end()
