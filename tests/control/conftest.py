"""Shared fixtures for control-plane tests: a started cluster and our client on it.

`cluster` is a kubesim SimCluster, or for a `both_servers` test's realkube
variant the session's real API server (kube_servers.RealServer) with a node
agent; both offer url, token, kubeconfig() and write_kubeconfig(). Every
fixture stops what it starts. Tests reach the cluster only over HTTP,
through control.k8s (the real kubernetes_asyncio client), never its internals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from kube_servers import RealServer

from control.k8s import KubeApi, connect_kube
from kubesim.cluster import SimCluster

NAMESPACE = "podgate"

ClusterFactory = Callable[..., Awaitable[SimCluster]]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # kubernetes_asyncio's session trusts proxy variables; keep it on loopback.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
async def make_cluster() -> AsyncIterator[ClusterFactory]:
    """Start SimClusters with any options (kubelet=None, tls=True...); all stopped after."""
    started: list[SimCluster] = []

    async def factory(**options: Any) -> SimCluster:
        options.setdefault("namespaces", ("default", NAMESPACE))
        cluster = SimCluster(**options)
        await cluster.start()
        started.append(cluster)
        return cluster

    yield factory
    for cluster in reversed(started):
        await cluster.stop()


@pytest.fixture
async def sim_cluster(make_cluster: ClusterFactory) -> SimCluster:
    """A started kubesim with the "podgate" namespace and kubesim's own kubelet."""
    return await make_cluster(kubelet="sim")


@pytest.fixture
def cluster(request: pytest.FixtureRequest, kube_server: str) -> SimCluster | RealServer:
    """kubesim (sim_cluster), or the real API server (real_server) for a realkube variant.

    Sync on purpose: an async fixture cannot ask for other async fixtures by name.
    """
    name = "real_server" if kube_server == "realkube" else "sim_cluster"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
async def kube(cluster: SimCluster | RealServer) -> AsyncIterator[KubeApi]:
    """Our KubeApi connected to `cluster` (namespace "podgate"); closed after the test."""
    api = await connect_kube(kubeconfig=cluster.kubeconfig(NAMESPACE), request_timeout=5.0)
    yield api
    await api.close()


FaultSetter = Callable[[SimCluster, dict[str, Any]], Awaitable[dict[str, Any]]]


@pytest.fixture
def set_faults() -> FaultSetter:
    """PUT fault settings to a cluster's /kubesim/faults; returns what it now applies."""

    async def put(cluster: SimCluster, settings: dict[str, Any]) -> dict[str, Any]:
        ssl: Any = False if cluster.tls else None
        headers = {"Authorization": f"Bearer {cluster.token}"}
        url = f"{cluster.url}/kubesim/faults"
        async with (
            aiohttp.ClientSession() as session,
            session.put(url, json=settings, headers=headers, ssl=ssl) as reply,
        ):
            assert reply.status == 200, await reply.text()
            return dict(await reply.json())

    return put
