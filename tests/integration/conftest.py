"""Fixtures of the process-level integration tests: the cluster podgate processes run against.

`cluster` is `podgate sim` running alone as its own process (the cluster that
outlives the ingress), or for a `both_servers` test's realkube variant the
session's real API server with a node agent in the test process. `kube` is
plain REST to it with the admin token; jupyter_kit's `pause_kubelet` holds
pods as they are on either (kubesim's fault hook, or the agent's set_paused).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from jupyter_kit import ClusterAccess, KubeRest, KubesimProcess, start_kubesim_process
from kube_servers import RealServer

NAMESPACE = "podgate"


@pytest.fixture
async def kubesim(tmp_path: Path) -> AsyncIterator[KubesimProcess]:
    """`podgate sim` as its own process (the cluster that outlives the ingress)."""
    sim = await start_kubesim_process(tmp_path)
    try:
        yield sim
    finally:
        await sim.end()


@pytest.fixture
def cluster(request: pytest.FixtureRequest, kube_server: str, tmp_path: Path) -> ClusterAccess:
    """kubesim's process, or the real server (sync: it asks for async fixtures by name)."""
    if kube_server == "realkube":
        server: RealServer = request.getfixturevalue("real_server")
        kubeconfig = server.write_kubeconfig(tmp_path / "realkube.kubeconfig", NAMESPACE)
        return ClusterAccess(server.url, kubeconfig, server.token, server.ca_file, server.agent)
    sim: KubesimProcess = request.getfixturevalue("kubesim")
    return ClusterAccess(sim.url, sim.kubeconfig, sim.token)


@pytest.fixture
async def kube(cluster: ClusterAccess) -> AsyncIterator[KubeRest]:
    """REST to the cluster, with podgate's namespace made (the real one has it already)."""
    rest = KubeRest(cluster.url, cluster.token, cluster.ca_file)
    try:
        if not cluster.real:
            status, body = await rest.call(
                "POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}}
            )
            assert status == 201, body
        yield rest
    finally:
        await rest.close()
