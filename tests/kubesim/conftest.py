"""Shared fixtures for kubesim tests: a started SimCluster and real clients.

Every fixture stops what it starts. Tests talk to the cluster only over HTTP
(kubernetes_asyncio, kubectl, aiohttp), never through its internals.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, config, watch

from kubesim.cluster import SimCluster
from kubesim.kubelet import KubeletConfig, SimKubelet

ClusterFactory = Callable[..., Awaitable[SimCluster]]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # kubernetes_asyncio's session trusts proxy variables; keep it on loopback.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
async def make_cluster() -> AsyncIterator[ClusterFactory]:
    """Start SimClusters with any options (kubelet=None, tls=True…); all stopped after."""
    started: list[SimCluster] = []

    async def factory(**options: Any) -> SimCluster:
        cluster = SimCluster(**options)
        await cluster.start()
        started.append(cluster)
        return cluster

    yield factory
    for cluster in reversed(started):
        await cluster.stop()


@pytest.fixture
async def api_cluster(make_cluster: ClusterFactory) -> SimCluster:
    """An API server with no kubelet: pods stay as written."""
    return await make_cluster(kubelet=None)


@pytest.fixture
def kubeconfig(api_cluster: SimCluster, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    api_cluster.write_kubeconfig(path)
    return path


@pytest.fixture
async def api_client(kubeconfig: Path) -> AsyncIterator[Any]:
    """A kubernetes_asyncio ApiClient loaded from the cluster's kubeconfig."""
    from kubernetes_asyncio import config

    client = await config.new_client_from_config(config_file=str(kubeconfig))
    yield client
    await client.close()


@pytest.fixture
def core_api(api_client: Any) -> Any:
    from kubernetes_asyncio import client

    return client.CoreV1Api(api_client)


# -- the simulated kubelet, observed only over HTTP -----------------------------

# A kubelet tuned for tests: short back-off, grace and check intervals.
FAST_KUBELET: dict[str, Any] = {
    "backoff_initial": 0.2,
    "backoff_max": 0.8,
    "stop_grace": 1.0,
    "memory_check_interval": 0.1,
}


class PodClient:
    """One cluster's default namespace as a spawner sees it through kubernetes_asyncio.

    Every helper is an HTTP call or a watch with field selectors; waits are
    bounded in time and raise AssertionError with the last state seen.
    """

    namespace = "default"

    def __init__(self, cluster: SimCluster, api: Any) -> None:
        self.cluster = cluster
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    async def create(self, name: str, *containers: dict[str, Any], **spec: Any) -> Any:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "kubelet-test"}},
            "spec": {"containers": list(containers), **spec},
        }
        return await self.core.create_namespaced_pod(self.namespace, body)

    async def delete(self, name: str, grace: int | None = None) -> Any:
        """DELETE the pod; returns the answer (the terminating pod, or a Status)."""
        options = {} if grace is None else {"grace_period_seconds": grace}
        return await self.core.delete_namespaced_pod(name, self.namespace, **options)

    async def remove(self, name: str, grace: int | None = None, within: float = 10.0) -> Any:
        """DELETE the pod and wait for its DELETED watch event; return the last pod.

        The watch resumes from a version read before the DELETE: a pod that
        goes at once answers with the deletion's own version, after which
        nothing more is sent (as on a real API server).
        """
        before = await self.core.read_namespaced_pod(name, self.namespace)
        await self.delete(name, grace)
        return await self.until_deleted(name, before.metadata.resource_version, within)

    async def follow(
        self,
        list_call: Any,
        field_selector: str,
        check: Callable[[str, Any], Any],
        within: float,
        since: str | None = None,
    ) -> Any:
        """Watch list_call with a field selector until check(type, obj) is truthy."""
        deadline = time.monotonic() + within
        last: Any = None
        options: dict[str, Any] = {"resource_version": since} if since else {}
        while (left := deadline - time.monotonic()) > 0:
            # A fresh Watch per connection; its context closes the Watch's own
            # ApiClient and the open response.
            try:
                async with watch.Watch() as stream, asyncio.timeout(left):
                    async for event in stream.stream(
                        list_call,
                        self.namespace,
                        field_selector=field_selector,
                        timeout_seconds=max(1, int(left) + 1),
                        **options,
                    ):
                        last = event["object"]
                        options = {"resource_version": last.metadata.resource_version}
                        result = check(event["type"], last)
                        if result:
                            return result
            except TimeoutError:
                break
        raise AssertionError(f"{field_selector}: not seen within {within}s; last: {last}")

    async def until(self, name: str, check: Callable[[Any], Any], within: float = 10.0) -> Any:
        """The pod as soon as check(pod) holds, following the pod watch."""
        return await self.follow(
            self.core.list_namespaced_pod,
            f"metadata.name={name}",
            lambda kind, pod: pod if kind != "DELETED" and check(pod) else None,
            within,
        )

    async def until_deleted(self, name: str, since: str, within: float = 10.0) -> Any:
        """Wait for the pod's DELETED watch event (resuming from `since`); return the pod."""
        return await self.follow(
            self.core.list_namespaced_pod,
            f"metadata.name={name}",
            lambda kind, pod: pod if kind == "DELETED" else None,
            within,
            since,
        )

    async def until_event(
        self, name: str, check: Callable[[Any], Any], within: float = 10.0
    ) -> Any:
        """The first Event about pod `name` for which check(event) holds."""
        return await self.follow(
            self.core.list_namespaced_event,
            f"involvedObject.name={name}",
            lambda kind, event: event if kind != "DELETED" and check(event) else None,
            within,
        )

    async def events(self, name: str) -> list[Any]:
        """The pod's Events, oldest first (names are time-ordered, as a real recorder's)."""
        found = await self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=Pod"
        )
        return sorted(found.items, key=lambda e: e.metadata.name)

    async def reasons(self, name: str) -> list[str]:
        return [e.reason for e in await self.events(name)]

    async def log(self, name: str, container: str | None = None) -> str:
        """The log as bytes on the wire say it.

        Without _preload_content=False the client json-decodes a log that
        looks like JSON and hands back its Python repr.
        """
        options = {"container": container} if container else {}
        response = await self.core.read_namespaced_pod_log(
            name, self.namespace, _preload_content=False, **options
        )
        try:
            text = str(await response.text())
        finally:
            response.release()
        if response.status != 200:
            raise client.ApiException(status=response.status, reason=text)
        return text

    async def until_log(self, name: str, check: Callable[[str], bool], within: float = 10.0) -> str:
        """Poll the pod's log (bounded) until check(log) holds; return it."""
        deadline = time.monotonic() + within
        text = ""
        while time.monotonic() < deadline:
            try:
                text = await self.log(name)
            except client.ApiException as e:
                if e.status != 400:  # 400: the container has not started yet
                    raise
                text = ""
            if check(text):
                return text
            await asyncio.sleep(0.05)
        raise AssertionError(f"log of {name} never matched; last: {text!r}")

    async def pids(self, name: str, count: int = 1) -> list[int]:
        """Pids a test program printed as 'pid N' lines in its log."""
        text = await self.until_log(name, lambda t: t.count("pid ") >= count)
        return [int(line.split()[1]) for line in text.splitlines() if line.startswith("pid ")]

    async def metrics(self, name: str) -> dict[str, Any]:
        return dict(
            await self.custom.get_namespaced_custom_object(
                "metrics.k8s.io", "v1beta1", self.namespace, "pods", name
            )
        )

    async def set_faults(self, settings: dict[str, Any]) -> dict[str, Any]:
        """PUT fault settings to /kubesim/faults; return what the cluster now applies."""
        ssl: Any = False if self.cluster.tls else None
        headers = {"Authorization": f"Bearer {self.cluster.token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.put(
                f"{self.cluster.url}/kubesim/faults", json=settings, headers=headers, ssl=ssl
            ) as reply,
        ):
            assert reply.status == 200, await reply.text()
            return dict(await reply.json())


SimFactory = Callable[..., Awaitable[PodClient]]


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory pods' own users can reach (pytest's tmp_path is closed to them as root)."""
    path = Path(tempfile.mkdtemp(prefix="kubesim-test-"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def shared_dir(reachable_dir: Path) -> Path:
    """A directory every pod may write to (sticky, like /tmp), for marker files tests read."""
    path = reachable_dir / "shared"
    path.mkdir()
    path.chmod(0o1777)
    return path


@pytest.fixture
async def make_sim(
    make_cluster: ClusterFactory, tmp_path: Path, reachable_dir: Path
) -> AsyncIterator[SimFactory]:
    """Start clusters with a fast SimKubelet (KubeletConfig overrides as keywords).

    tls=True serves HTTPS (what kubectl needs). Clients are closed, then the
    clusters stopped, after the test.
    """
    clients: list[Any] = []

    async def factory(*, tls: bool = False, **kubelet_options: Any) -> PodClient:
        index = len(clients)
        data_dir = reachable_dir / f"kubelet-{index}"
        options = {**FAST_KUBELET, "data_dir": data_dir, **kubelet_options}
        cluster = await make_cluster(kubelet=SimKubelet(KubeletConfig(**options)), tls=tls)
        path = cluster.write_kubeconfig(tmp_path / f"kubeconfig-{index}")
        api = await config.new_client_from_config(config_file=str(path))
        clients.append(api)
        return PodClient(cluster, api)

    yield factory
    for api in clients:
        await api.close()


@pytest.fixture
async def sim(make_sim: SimFactory) -> PodClient:
    """A cluster with one default node and a fast kubelet, seen through PodClient."""
    return await make_sim()


@pytest.fixture
def pod_port() -> int:
    """A port for pods' servers, drawn per test below the ephemeral range.

    Each kubesim starts its pod addresses at a random place in 127/8, so two
    test runs at once rarely share one; distinct ports keep them apart when
    they do.
    """
    return random.randrange(20_000, 32_000, 2)  # even: port + 1 is free for a second pod
