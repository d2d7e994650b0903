"""`helm install` of deploy/chart into the real API server, and podgate serving a user from it.

The chart goes in as an operator installs it (`helm install --create-namespace
--take-ownership`, so the release's Namespace gets its Pod Security labels),
into a namespace of its own on the session's control plane. Every object the
chart renders (defaults and each example) passes the server's own schema in
a server-side dry run.

podgate's own Deployment pods are admitted but cannot run on kubesim's node
agent: its kubelet cannot mount a single file of a ConfigMap (`subPath:
config.yaml` fails to set up the volume: it makes a directory at that path,
which is the ConfigMap's file), and its containers are host processes without
a mount namespace, so `--config /etc/podgate/config.yaml` would not name the
mounted file anyway (and a pod the agent fails to set up also fails the
agent's stop). The test's values give them a node selector no node matches,
so they stay Pending once admitted. podgate runs as a process with what the chart
installed: the config from the release's ConfigMap, the users, API tokens
and cookie secret from its Secret, and a token of its ServiceAccount (the
Role the chart made), as tests/realkube/deploy_kit runs deploy/. It must
reach Ready, sign a user in and start that user's server (a pod the node
agent runs) and proxy to it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from deploy_kit import account_token, kube_calls, podgate_config, start_podgate, warnings_in
from deploy_kit import write_kubeconfig as account_kubeconfig
from helm_kit import CHART, run_helm
from hub_kit import PASSWORD, Browser
from kube_servers import RealServer
from realkube_kit import RealKube, run_kubectl

from control.auth import hash_password

EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
ADMIN_TOKEN = "helm-test-admin-token-0123456789"
DEADLINE = 60.0
USERS = ("alice", "bob")
NO_NODE = "example.org/podgate-core"  # a node label no node of the test has

Obj = dict[str, Any]


@dataclass
class Release:
    namespace: str
    output: str  # helm install's stdout and stderr
    values: Path
    work: Path


def kubectl(kube: RealKube, *args: str, ok: bool = True) -> tuple[int, str]:
    return run_kubectl(kube.kubeconfig, *args, ok=ok)


def helm_on(kube: RealKube, helm: Path, release: Release | None, *args: str, ok: bool = True,
            work: Path | None = None) -> Any:  # fmt: skip
    home = (release.work if release else work) or Path(".")
    return run_helm(helm, *args, "--kubeconfig", str(kube.kubeconfig), ok=ok, home=home)


def eventually(check: Any, what: str, seconds: float = DEADLINE) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {seconds:.0f}s: {what}")


def values_for_the_test() -> Obj:
    """A site's values, with user servers the node agent runs in-process (kubesim/echo)."""
    hashed = hash_password(PASSWORD)
    return {
        "auth": {"kind": "password", "admins": ["alice"], "users": dict.fromkeys(USERS, hashed)},
        "apiTokens": [{"name": "test", "token": ADMIN_TOKEN, "scopes": ["admin"]}],
        "singleuser": {"image": {"name": "kubesim/echo", "tag": "latest"}},
        "podgate": {
            # The echo server is no Jupyter server: no Jupyter arguments, ready once it runs.
            "config": {"spawner": {"jupyter_args": False, "readiness_path": None}},
            # podgate's own pods cannot run on the node agent (the module's docstring):
            # admitted, they wait for a node that is not there instead.
            "nodeSelector": {NO_NODE: "true"},
        },
    }


@pytest.fixture(scope="module")
def release(
    realkube: RealKube, helm: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    work = tmp_path_factory.mktemp("helm")
    namespace = f"helm-{uuid.uuid4().hex[:6]}"
    values = work / "values.yaml"
    values.write_text(yaml.safe_dump(values_for_the_test()))
    done = run_helm(
        helm, "install", "podgate", str(CHART), "--namespace", namespace, "--create-namespace",
        "--take-ownership", "--values", str(values), "--kubeconfig", str(realkube.kubeconfig),
        home=work,
    )  # fmt: skip
    yield Release(namespace, done.stdout + done.stderr, values, work)
    run_helm(helm, "uninstall", "podgate", "--namespace", namespace, "--kubeconfig",
             str(realkube.kubeconfig), home=work, ok=False)  # fmt: skip
    kubectl(realkube, "delete", "namespace", namespace, "--wait=false", ok=False)


def manifest(realkube: RealKube, helm: Path, release: Release) -> list[Obj]:
    done = helm_on(realkube, helm, release, "get", "manifest", "podgate", "-n", release.namespace)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


# -- the release goes in ----------------------------------------------------------


def test_the_install_is_accepted_and_stored(
    realkube: RealKube, helm: Path, release: Release
) -> None:
    assert "STATUS: deployed" in release.output, release.output
    assert not warnings_in(release.output), release.output
    listed = helm_on(realkube, helm, release, "list", "-n", release.namespace, "-o", "json")
    [entry] = json.loads(listed.stdout)
    assert (entry["name"], entry["status"]) == ("podgate", "deployed")
    objects = manifest(realkube, helm, release)
    assert {o["kind"] for o in objects} >= {"Deployment", "Role", "Secret", "NetworkPolicy"}
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        where = [] if kind == "Namespace" else ["-n", release.namespace]
        kubectl(realkube, "get", kind, name, "-o", "name", *where)


def test_the_namespace_enforces_restricted(realkube: RealKube, release: Release) -> None:
    out = kubectl(realkube, "get", "namespace", release.namespace, "-o", "json")[1]
    metadata = json.loads(out)["metadata"]
    for mode in ("enforce", "audit", "warn"):
        assert metadata["labels"][f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert metadata["annotations"]["helm.sh/resource-policy"] == "keep"


def test_the_deployments_own_pods_are_admitted(realkube: RealKube, release: Release) -> None:
    def pods() -> list[Obj]:
        out = kubectl(realkube, "get", "pods", "-n", release.namespace, "-o", "json",
                      "-l", "app.kubernetes.io/component=ingress")[1]  # fmt: skip
        return list(json.loads(out)["items"])

    eventually(lambda: len(pods()) == 2, "2 podgate pods (the chart's replicas)")
    events = kubectl(realkube, "get", "events", "-n", release.namespace, "-o", "json")[1]
    assert "FailedCreate" not in {e["reason"] for e in json.loads(events)["items"]}
    assert all(p["spec"]["nodeSelector"] == {NO_NODE: "true"} for p in pods())


@pytest.mark.parametrize("values", [None, *EXAMPLES], ids=lambda p: p.name if p else "defaults")
def test_every_rendered_object_passes_the_servers_schema(
    realkube: RealKube, helm: Path, release: Release, values: Path | None
) -> None:
    """A server-side dry run with strict field validation: the server's own schema and
    admission judge every object (nothing is stored)."""
    args = ["template", "podgate", str(CHART), "-n", release.namespace]
    done = helm_on(realkube, helm, release, *args, *(["-f", str(values)] if values else []))
    code, out = run_kubectl(
        realkube.kubeconfig, "apply", "--dry-run=server", "--validate=strict", "-n",
        release.namespace, "-f", "-", stdin=done.stdout, ok=False,
    )  # fmt: skip
    assert code == 0, out
    assert not [w for w in warnings_in(out) if "last-applied-configuration" not in w], out
    rendered = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    assert len([line for line in out.splitlines() if "(server dry run)" in line]) == len(rendered)


def test_a_wrong_key_fails_the_install(realkube: RealKube, helm: Path, release: Release) -> None:
    bad = "singleuser.storage.capasity=1Gi"
    done = helm_on(realkube, helm, release, "install", "mistyped", str(CHART), "-n",
                   release.namespace, "--set", bad, ok=False)  # fmt: skip
    assert done.returncode != 0
    assert "additional properties 'capasity' not allowed" in done.stderr, done.stderr
    listed = helm_on(realkube, helm, release, "list", "-n", release.namespace, "-q")
    assert listed.stdout.split() == ["podgate"]


def secret_files(realkube: RealKube, namespace: str) -> dict[str, str]:
    out = kubectl(realkube, "get", "secret", "podgate-secrets", "-n", namespace, "-o", "json")[1]
    data = json.loads(out)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def test_an_upgrade_keeps_the_cookie_secret(
    realkube: RealKube, helm: Path, release: Release
) -> None:
    """Made once at install (none was given), kept by every upgrade, like z2jh's secretToken."""
    before = secret_files(realkube, release.namespace)["cookie-secret"]
    assert len(before) == 64
    helm_on(realkube, helm, release, "upgrade", "podgate", str(CHART), "-n", release.namespace,
            "-f", str(release.values), "--set", "cull.timeout=7200")  # fmt: skip
    assert secret_files(realkube, release.namespace)["cookie-secret"] == before
    config = kubectl(realkube, "get", "configmap", "podgate-config", "-n", release.namespace,
                     "-o", "jsonpath={.data.config\\.yaml}")[1]  # fmt: skip
    assert yaml.safe_load(config)["culler"]["timeout"] == 7200


# -- podgate from what the chart installed, serving a user -------------------------


async def until_ready(session: aiohttp.ClientSession, ops_url: str) -> None:
    """/readyz answers 200 once podgate's watches have listed (bounded)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        async with session.get(ops_url + "/readyz") as answer:
            if answer.status == 200:
                return
            assert time.monotonic() < deadline, f"not ready in {DEADLINE:.0f}s: {answer.status}"
        await asyncio.sleep(0.2)


async def test_podgate_from_the_release_serves_a_user(
    realkube: RealKube, release: Release, real_server: RealServer, tmp_path: Path
) -> None:
    ns = release.namespace
    config_yaml = kubectl(realkube, "get", "configmap", "podgate-config", "-n", ns, "-o",
                          "jsonpath={.data.config\\.yaml}")[1]  # fmt: skip
    assert yaml.safe_load(config_yaml)["spawner"]["namespace"] == ns
    files = secret_files(realkube, ns)
    token = account_token(realkube, ns, "podgate")
    kubeconfig = account_kubeconfig(realkube, token, tmp_path / "sa" / "kubeconfig", ns)
    path = podgate_config(config_yaml, kubeconfig, tmp_path / "run", files["users.yaml"],
                          files["api-tokens.yaml"])  # fmt: skip
    environ = {"PODGATE_COOKIE_SECRET": files["cookie-secret"]}
    podgate = await asyncio.to_thread(start_podgate, path, environ, tmp_path / "podgate.log")
    try:
        async with aiohttp.ClientSession() as session:
            await until_ready(session, podgate.ops_url)
            async with Browser(podgate.public_url) as browser:
                # Signing in starts the server (no profiles to choose from), as in JupyterHub.
                events = await browser.start_server("alice", seconds=DEADLINE)
                assert events and events[-1].get("ready"), events
                page = await browser.get("/user/alice/lab")
                assert page.status == 200, await page.text()
                echoed = await page.json()
                assert echoed["path"] == "/user/alice/lab"
            headers = {"Authorization": f"token {ADMIN_TOKEN}"}
            async with session.get(podgate.ops_url + "/hub/api/users/alice",
                                   headers=headers) as answer:  # fmt: skip
                assert answer.status == 200
                assert (await answer.json())["servers"][""]["ready"] is True
            async with session.get(podgate.ops_url + "/metrics") as answer:
                calls = kube_calls(await answer.text())
        out = kubectl(realkube, "get", "pods", "-n", ns, "-o", "json",
                      "-l", "app.kubernetes.io/component=singleuser-server")[1]  # fmt: skip
        [pod] = json.loads(out)["items"]
        assert pod["status"]["phase"] == "Running"
    finally:
        code = podgate.stop()
    log = podgate.log_text()
    refused = {call: n for call, n in calls.items() if call[2] in ("401", "403")}
    assert not refused, f"refused calls {refused}; log: {log[-3000:]}"
    assert code == 0, log[-3000:]
