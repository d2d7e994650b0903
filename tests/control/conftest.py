"""Shared fixtures for control-plane tests: a started kubesim cluster and our client on it.

Every fixture stops what it starts. Tests reach the cluster only over HTTP,
through control.k8s (the real kubernetes_asyncio client), never its internals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

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
async def cluster(make_cluster: ClusterFactory) -> SimCluster:
    """A started cluster with the "podgate" namespace and kubesim's own kubelet."""
    return await make_cluster(kubelet="sim")


@pytest.fixture
async def kube(cluster: SimCluster) -> AsyncIterator[KubeApi]:
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
