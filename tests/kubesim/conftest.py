"""Shared fixtures for kubesim tests: a started SimCluster and real clients.

Every fixture stops what it starts. Tests talk to the cluster only over HTTP
(kubernetes_asyncio, kubectl, aiohttp), never through its internals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kubesim.cluster import SimCluster

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
