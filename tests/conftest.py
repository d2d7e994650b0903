"""Suite-wide rules and the two API servers.

No test leaves tasks behind, and CI tolerates no skipped test. Tests marked
`both_servers` run once per API server: `kube_server` is "kubesim" or
"realkube" (the real control plane of tests/realkube, one per session, with
kubesim's kubelet as its node agent); `kubesim_only` marks a test that needs
kubesim's fault hooks.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kube_servers import (
    PodgateCluster,
    RealServer,
    delete_cluster_objects,
    ensure_namespace,
    reset_namespace,
    until_schedulable,
)
from realkube.realkube_kit import RealKube, build_realkube, start_realkube

# kubernetes_asyncio's session trusts proxy variables: keep loopback direct.
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

# Processes the tests start (podgate, kubesim) import this checkout, whatever
# checkout an editable install elsewhere points at.
_REPO = str(Path(__file__).resolve().parent.parent)
_OTHERS = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != _REPO]
os.environ["PYTHONPATH"] = os.pathsep.join([_REPO, *_OTHERS])


@pytest.fixture(autouse=True)
async def no_pending_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail a test that leaves tasks running on its loop after its fixtures stopped."""
    before = set(asyncio.all_tasks())
    yield
    for _ in range(20):  # let cancelled tasks finish unwinding
        leftover = [
            t
            for t in asyncio.all_tasks()
            if t not in before and t is not asyncio.current_task() and not t.done()
        ]
        if not leftover:
            return
        await asyncio.sleep(0.01)
    for task in leftover:
        task.cancel()
    names = ", ".join(sorted(t.get_name() + ":" + repr(t.get_coro()) for t in leftover))
    pytest.fail(f"test left {len(leftover)} task(s) pending: {names}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Run as root, kubesim runs pods as users of their own: say so if they cannot run Python."""
    if os.geteuid() != 0:
        return
    from kubesim.kubelet.users import closed_to_others

    closed = closed_to_others(Path(sys.executable).parent)
    if closed is not None:
        terminalreporter.write_line(
            f"WARNING: run as root, kubesim runs each pod as a user of its own, who cannot "
            f"pass {closed} to run {sys.executable}: tests with pods fail (tests/run lets "
            f"them pass; or chmod o+x {closed})",
            red=True,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With PODGATE_NO_SKIPS=1 (tests/run sets it) a skipped test fails the run."""
    if os.environ.get("PODGATE_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(
            f"PODGATE_NO_SKIPS: {len(skipped)} test(s) were skipped; every part of the suite "
            "is required here (install what they need):",
            red=True,
        )
        for report in skipped:
            reporter.write_line(f"  {report.nodeid}: {report.longrepr[-1]}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# -- the two API servers ----------------------------------------------------------------

SERVERS = ("kubesim", "realkube")
# Namespaces the suites use; each realkube test starts with them empty.
REAL_NAMESPACES = ("default", "podgate")
# What the node agent registers (kubesim/nodeagent); removed after each module.
AGENT_NODE = "kubesim-node"
AGENT_STORAGE_CLASS = "kubesim-local"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_servers: run once against kubesim and once against the real API server"
    )
    config.addinivalue_line(
        "markers", "kubesim_only: needs kubesim's fault hooks; runs against kubesim alone"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A `both_servers` test (not also `kubesim_only`) gets kube_server = each of SERVERS.

    A test in a marked module that reaches no server (a config check) runs once.
    """
    node = metafunc.definition
    if node.get_closest_marker("kubesim_only") or not node.get_closest_marker("both_servers"):
        return
    if "kube_server" in metafunc.fixturenames:
        metafunc.parametrize("kube_server", SERVERS, ids=SERVERS)


@pytest.fixture
def kube_server() -> str:
    """Which API server this test runs against; "kubesim" unless marked both_servers."""
    return "kubesim"


@pytest.fixture(scope="session")
def realkube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealKube]:
    """The real kube-apiserver, controller-manager and scheduler, stopped after the session."""
    kube = start_realkube(build_realkube(), tmp_path_factory.mktemp("realkube"))
    try:
        yield kube
    finally:
        kube.stop()


@pytest.fixture(scope="module")
def real_node(realkube: RealKube) -> Iterator[str]:
    """The agent's Node, kept from test to test of a module, removed after it.

    A new Node carries the not-ready taint until the node lifecycle
    controller sees it Ready (seconds): once per module, not per test. At
    the end the Node, the volumes left and the StorageClass are deleted, so
    the shared control plane is left as it came (tests/realkube expects no
    nodes).
    """
    yield AGENT_NODE
    delete_cluster_objects(
        realkube.url,
        realkube.token,
        realkube.ca_file,
        [
            f"/api/v1/nodes/{AGENT_NODE}",
            "/api/v1/persistentvolumes",
            f"/apis/storage.k8s.io/v1/storageclasses/{AGENT_STORAGE_CLASS}",
        ],
    )


@pytest.fixture
async def real_server(realkube: RealKube, real_node: str) -> AsyncIterator[RealServer]:
    """The session's real API server, its namespaces emptied, with a node agent running pods.

    The agent is the test's own (its pods' processes and echo servers live on
    the test's event loop); the Node it registers is the module's (real_node).
    """
    from kubesim.nodeagent import NodeAgent

    server = RealServer(realkube.url, realkube.token, realkube.ca_file)
    async with server.rest() as rest:
        for namespace in REAL_NAMESPACES:
            await ensure_namespace(rest, namespace)
            await reset_namespace(rest, namespace)
        agent = NodeAgent(realkube.kubeconfig)
        await agent.start()
        server.agent = agent
        try:
            await until_schedulable(rest, real_node)
            yield server
        finally:
            try:
                for namespace in REAL_NAMESPACES:
                    await reset_namespace(rest, namespace)
            finally:
                await agent.stop()


@pytest.fixture
def podgate_cluster(
    request: pytest.FixtureRequest, kube_server: str, tmp_path: Path
) -> PodgateCluster:
    """The cluster make_podgate's podgates use (a sync selector: async fixtures cannot
    ask for other async fixtures by name)."""
    if kube_server != "realkube":
        return PodgateCluster()
    server: RealServer = request.getfixturevalue("real_server")
    kubeconfig = server.write_kubeconfig(tmp_path / "podgate.kubeconfig", namespace="podgate")
    settings = {"cluster": {"kind": "kube", "kubeconfig": str(kubeconfig)}}
    return PodgateCluster(settings, server.agent)


@pytest.fixture
async def make_podgate(podgate_cluster: PodgateCluster) -> AsyncIterator[object]:
    """Start podgates with the control plane (tests/hub_kit.py); all stopped afterwards.

    Each runs against `podgate_cluster` unless its settings name a cluster.
    """
    from hub_kit import start_podgate

    started = []

    async def make(settings: dict | None = None):  # type: ignore[no-untyped-def]
        podgate = await start_podgate({**podgate_cluster.settings, **(settings or {})})
        started.append(podgate)
        return podgate

    yield make
    for podgate in reversed(started):
        await podgate.stop()
