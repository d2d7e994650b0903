"""deploy/ applied to the real API server, and podgate run with its own ServiceAccount's token.

The manifests go in with `kubectl apply -k` as an operator would apply them
(each kustomization moved into a namespace of its own: the control plane is
shared by the session). Then a token of podgate's ServiceAccount comes from
TokenRequest, and the real RBAC authorizer judges what it may do: `auth can-i
--as` for the Role's promises and its limits, and a real `podgate run` doing
its Kubernetes work with that token alone. The namespace enforces Pod
Security "restricted": every user pod podgate's own manifest code builds must
be admitted there, and a pod that breaks the profile must not.

There is no node: pods stay Pending, which is all admission and RBAC need.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from deploy_kit import (
    account_token,
    can_i,
    granted_list,
    kube_calls,
    one,
    overlay_in,
    podgate_config,
    render,
    start_podgate,
    warnings_in,
    write_kubeconfig,
)
from hub_kit import PASSWORD, Browser
from realkube_kit import RealKube, run_kubectl

from control import names
from control.auth import hash_password
from control.manifests import pod_manifest, pvc_manifest
from control.user_records import RECORD_LABELS
from podgate.config import Config, load_config

DEADLINE = 60.0
EXAMPLE = "deploy/overlays/example"  # storage and three profiles: the fullest config
APPLIED = (
    "deploy",
    EXAMPLE,
    "deploy/overlays/ingress-tls",
    "deploy/overlays/oidc",
    "deploy/overlays/loadbalancer-tls",
)
ACCOUNT = "podgate"  # deploy/base/serviceaccount.yaml
ADMIN_TOKEN = "deploy-test-admin-token-0123456789"

Obj = dict[str, Any]


@dataclass
class Deployed:
    """The kustomizations of deploy/ as applied: namespace and kubectl's output for each."""

    namespaces: dict[str, str]
    outputs: dict[str, str]

    @property
    def ns(self) -> str:
        """The example overlay's namespace: where podgate runs in these tests."""
        return self.namespaces[EXAMPLE]

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.ns}:{ACCOUNT}"


def kubectl(kube: RealKube, *args: str, stdin: str = "", ok: bool = True) -> tuple[int, str]:
    return run_kubectl(kube.kubeconfig, *args, stdin=stdin, ok=ok)


def eventually(check: Any, what: str, seconds: float = DEADLINE) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {seconds:.0f}s: {what}")


@pytest.fixture(scope="module")
def deployed(realkube: RealKube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    work = tmp_path_factory.mktemp("deploy")
    suffix = uuid.uuid4().hex[:6]
    namespaces = {k: f"{k.rsplit('/', 1)[-1]}-{suffix}" for k in APPLIED}
    outputs = {}
    for kustomization, namespace in namespaces.items():
        overlay = overlay_in(kustomization, namespace, work / namespace)
        outputs[kustomization] = kubectl(realkube, "apply", "-k", str(overlay))[1]
    yield Deployed(namespaces, outputs)
    for namespace in namespaces.values():  # what the namespace holds goes with it
        kubectl(realkube, "delete", "namespace", namespace, "--wait=false", ok=False)


def example_config(deployed: Deployed, tmp_path: Path, kustomization: str = EXAMPLE) -> Config:
    """A config.yaml of deploy/, loaded as podgate loads it, in the example's namespace."""
    text = one(render(kustomization), "ConfigMap", "podgate-config")["data"]["config.yaml"]
    raw = yaml.safe_load(text)
    raw["spawner"]["namespace"] = deployed.ns
    users, tokens = tmp_path / "users.yaml", tmp_path / "api-tokens.yaml"
    users.write_text("# none\n")
    tokens.write_text("[]\n")
    raw["auth"]["users_file"], raw["api_tokens_file"] = str(users), str(tokens)
    path = tmp_path / f"{kustomization.rsplit('/', 1)[-1]}-config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path, {"PODGATE_COOKIE_SECRET": "x" * 32})


def account_kubeconfig(realkube: RealKube, deployed: Deployed, path: Path) -> Path:
    token = account_token(realkube, deployed.ns, ACCOUNT)
    return write_kubeconfig(realkube, token, path, deployed.ns)


# -- the manifests go in ----------------------------------------------------------


def test_every_kustomization_is_accepted_without_warnings(
    realkube: RealKube, deployed: Deployed
) -> None:
    for kustomization, namespace in deployed.namespaces.items():
        output = deployed.outputs[kustomization]
        assert not warnings_in(output), output
        objects = render(kustomization)
        # Every rendered object is stored (kubectl names them with the applied namespace).
        for obj in objects:
            kind, name = obj["kind"], obj["metadata"]["name"]
            if kind == "Namespace":
                name = namespace
            args = ["get", kind, name, "-o", "name"]
            kubectl(realkube, *args if kind == "Namespace" else [*args, "-n", namespace])
        assert len(objects) == len([line for line in output.splitlines() if line.strip()])
    ingress = deployed.outputs["deploy/overlays/ingress-tls"]
    assert "ingress.networking.k8s.io/podgate created" in ingress


def test_the_deployments_own_pods_are_admitted(realkube: RealKube, deployed: Deployed) -> None:
    """The ReplicaSet controller's pods of podgate pass Pod Security "restricted" too."""
    replicas = one(render(EXAMPLE), "Deployment")["spec"]["replicas"]

    def pods() -> list[Obj]:
        out = kubectl(realkube, "get", "pods", "-n", deployed.ns, "-o", "json",
                      "-l", "app.kubernetes.io/component=ingress")[1]  # fmt: skip
        return list(json.loads(out)["items"])

    eventually(lambda: len(pods()) == replicas, f"{replicas} podgate pods")
    events = kubectl(realkube, "get", "events", "-n", deployed.ns, "-o", "json")[1]
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert "FailedCreate" not in reasons


def test_the_namespace_enforces_restricted(realkube: RealKube, deployed: Deployed) -> None:
    for namespace in deployed.namespaces.values():
        out = kubectl(realkube, "get", "namespace", namespace, "-o", "json")[1]
        labels = json.loads(out)["metadata"]["labels"]
        for mode in ("enforce", "audit", "warn"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


# -- Pod Security: podgate's user pods pass, others do not ----------------------


def user_pods(config: Config, base: Config) -> list[tuple[str, Obj]]:
    """Every kind of user pod deploy/ makes: the base's (no storage, no profiles), and
    the example's for each profile (with storage)."""
    spawner = config.spawner
    assert spawner.storage is not None and spawner.profiles
    assert base.spawner.storage is None and not base.spawner.profiles
    pods = [("plain", pod_manifest("plain", base.spawner, None, "t" * 32))]
    pods += [
        (f"profile {p.slug}", pod_manifest(f"user-{p.slug}", spawner, p, "t" * 32))
        for p in spawner.profiles
    ]
    return pods


def create(kubeconfig: Path, obj: Obj, *extra: str, ok: bool = False) -> tuple[int, str]:
    return run_kubectl(kubeconfig, "create", "-o", "name", "-f", "-", *extra,
                       stdin=json.dumps(obj), ok=ok)  # fmt: skip


def test_every_user_pod_is_admitted(realkube: RealKube, deployed: Deployed, tmp_path: Path) -> None:
    """Server-side dry runs as podgate's account: admission and RBAC both judge each pod."""
    config = example_config(deployed, tmp_path)
    as_podgate = account_kubeconfig(realkube, deployed, tmp_path / "sa" / "kubeconfig")
    assert config.spawner.storage is not None
    claim = pvc_manifest("user-standard", config.spawner)
    code, out = create(as_podgate, claim, "--dry-run=server")
    assert code == 0 and not warnings_in(out), out
    base = example_config(deployed, tmp_path, "deploy")
    for what, pod in user_pods(config, base):
        code, out = create(as_podgate, pod, "--dry-run=server")
        assert code == 0, f"{what}: {out}"
        assert not warnings_in(out), f"{what}: {out}"
        assert out.strip() == f"pod/{pod['metadata']['name']}", out


@pytest.mark.parametrize(
    ("level", "change", "words"),
    [
        ("container", {"privileged": True, "allowPrivilegeEscalation": True}, "privileged"),
        ("container", {"allowPrivilegeEscalation": True}, "allowPrivilegeEscalation != false"),
        ("container", {"capabilities": {"add": ["NET_ADMIN"]}}, "unrestricted capabilities"),
        ("container", {"runAsUser": 0}, "runAsUser=0"),
        ("pod", {"runAsNonRoot": False}, "runAsNonRoot != true"),
        ("pod", {"seccompProfile": {"type": "Unconfined"}}, "seccompProfile"),
    ],
)
def test_a_pod_breaking_the_profile_is_refused(
    realkube: RealKube, deployed: Deployed, tmp_path: Path, level: str, change: Obj, words: str
) -> None:
    """Negative controls: podgate's user pod with one setting loosened, created for real."""
    config = example_config(deployed, tmp_path)
    pod = pod_manifest("mallory", config.spawner, None, "t" * 32)
    pod["metadata"]["name"] = f"refused-{uuid.uuid4().hex[:6]}"
    spec = pod["spec"] if level == "pod" else pod["spec"]["containers"][0]
    spec["securityContext"].update(change)
    code, out = create(realkube.kubeconfig, pod)
    assert code != 0, out
    assert "violates PodSecurity" in out and '"restricted:latest"' in out, out
    assert words in out, out


def test_a_pod_without_a_security_context_is_refused(
    realkube: RealKube, deployed: Deployed, tmp_path: Path
) -> None:
    config = example_config(deployed, tmp_path)
    pod = pod_manifest("mallory", config.spawner, None, "t" * 32)
    del pod["spec"]["securityContext"]
    del pod["spec"]["containers"][0]["securityContext"]
    code, out = create(realkube.kubeconfig, pod, "--dry-run=server")
    assert code != 0 and "violates PodSecurity" in out, out
    for missing in ("allowPrivilegeEscalation", "runAsNonRoot", "seccompProfile"):
        assert missing in out, out


# -- RBAC: what the authorizer lets podgate's account do -------------------------

NEEDED = [
    ("create", "pods"), ("get", "pods"), ("list", "pods"), ("watch", "pods"),
    ("patch", "pods"), ("delete", "pods"), ("create", "persistentvolumeclaims"),
    ("list", "events"), ("watch", "events"), ("create", "configmaps"),
    ("list", "configmaps"), ("watch", "configmaps"), ("patch", "configmaps"),
]  # fmt: skip
REFUSED = [
    ("get", "secrets"), ("list", "secrets"), ("watch", "secrets"),
    ("create", "pods/exec"), ("get", "pods/exec"), ("create", "pods/attach"),
    ("create", "pods/portforward"), ("get", "pods/log"), ("update", "pods"),
    ("create", "roles.rbac.authorization.k8s.io"), ("patch", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("bind", "roles.rbac.authorization.k8s.io"), ("escalate", "roles.rbac.authorization.k8s.io"),
    ("create", "serviceaccounts/token"), ("create", "services"), ("delete", "configmaps"),
    ("delete", "persistentvolumeclaims"), ("get", "configmaps"), ("create", "deployments.apps"),
]  # fmt: skip


def test_the_role_gives_podgate_what_it_needs(realkube: RealKube, deployed: Deployed) -> None:
    for verb, resource in NEEDED:
        assert can_i(realkube, deployed.subject, verb, resource, deployed.ns), (verb, resource)


def test_the_role_is_all_it_gets(realkube: RealKube, deployed: Deployed) -> None:
    """What the authorizer lists for podgate's account, less what any account of the
    namespace gets (its `default` account), is exactly the Role of deploy/."""
    anyone = granted_list(realkube, f"system:serviceaccount:{deployed.ns}:default", deployed.ns)
    podgate = granted_list(realkube, deployed.subject, deployed.ns)
    metrics = {("pods.metrics.k8s.io", "list")}  # the example's metrics-usage component
    assert podgate - anyone == {(r, v) for v, r in NEEDED} | metrics


@pytest.mark.parametrize(("verb", "resource"), REFUSED)
def test_the_role_gives_nothing_more(
    realkube: RealKube, deployed: Deployed, verb: str, resource: str
) -> None:
    assert not can_i(realkube, deployed.subject, verb, resource, deployed.ns)


def test_nothing_outside_its_namespace_or_cluster_wide(
    realkube: RealKube, deployed: Deployed
) -> None:
    other = deployed.namespaces["deploy"]  # another podgate's namespace, same Role there
    for namespace in (other, "default", "kube-system"):
        for verb, resource in NEEDED:
            assert not can_i(realkube, deployed.subject, verb, resource, namespace), namespace
    cluster_wide = [
        ("list", "namespaces"), ("list", "nodes"), ("create", "namespaces"),
        ("list", "clusterroles"), ("create", "clusterrolebindings"),
    ]  # fmt: skip
    for verb, resource in cluster_wide:
        assert not can_i(realkube, deployed.subject, verb, resource, deployed.ns), resource


def test_the_token_itself_reads_no_secret(
    realkube: RealKube, deployed: Deployed, tmp_path: Path
) -> None:
    """Not only the review: a real read with the account's token is refused (403)."""
    as_podgate = account_kubeconfig(realkube, deployed, tmp_path / "sa" / "kubeconfig")
    code, out = run_kubectl(as_podgate, "get", "secrets", "-n", deployed.ns, ok=False)
    assert code != 0 and "Forbidden" in out and deployed.subject in out, out
    code, out = run_kubectl(as_podgate, "get", "pods", "-n", "default", ok=False)
    assert code != 0 and "Forbidden" in out, out
    code, out = run_kubectl(as_podgate, "get", "pods", "-n", deployed.ns, ok=False)
    assert code == 0, out


# -- podgate itself, with nothing but its account's token ------------------------

USERS = ("alice", "bob", "carol")


async def api(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> int:
    headers = {"Authorization": f"token {ADMIN_TOKEN}"}
    async with session.request(method, url, headers=headers, **kw) as answer:
        return answer.status


def stored(realkube: RealKube, namespace: str, kind: str, selector: str) -> list[Obj]:
    out = kubectl(realkube, "get", kind, "-n", namespace, "-l", selector, "-o", "json")[1]
    return list(json.loads(out)["items"])


async def test_podgate_works_with_its_own_account(
    realkube: RealKube, deployed: Deployed, tmp_path: Path
) -> None:
    config = example_config(deployed, tmp_path)
    profiles = [p.slug for p in config.spawner.profiles]
    as_podgate = account_kubeconfig(realkube, deployed, tmp_path / "sa" / "kubeconfig")
    deployed_yaml = one(render(EXAMPLE), "ConfigMap", "podgate-config")["data"]["config.yaml"]
    raw = yaml.safe_load(deployed_yaml)
    raw["spawner"]["namespace"] = deployed.ns
    hashed = hash_password(PASSWORD)
    users = "".join(f"{user}: '{hashed}'\n" for user in USERS)
    tokens = yaml.safe_dump([{"name": "test", "token": ADMIN_TOKEN, "scopes": ["admin"]}])
    path = podgate_config(yaml.safe_dump(raw), as_podgate, tmp_path / "run", users, tokens)
    podgate = start_podgate(path, {"PODGATE_COOKIE_SECRET": "c" * 32}, tmp_path / "podgate.log")
    try:
        # Sign-ins write the user records (ConfigMaps: create, then patch).
        for user in USERS:
            async with Browser(podgate.public_url) as browser:
                await browser.login(user)
        async with Browser(podgate.public_url) as browser:
            await browser.login("alice")
        # One start per profile: claim and pod made by podgate, admitted for real. With
        # no node the scheduler says so, podgate's event watch sees it, the start
        # fails as unschedulable and podgate deletes the pod; the claim stays.
        async with aiohttp.ClientSession() as session:
            for user, slug in zip(USERS, profiles, strict=True):
                url = f"{podgate.ops_url}/hub/api/users/{user}/server"
                assert await api(session, "POST", url, json={"profile": slug}) in (201, 202)
        pods = {names.pod_name(user, config.spawner.pod_name_prefix) for user in USERS}
        selector = "app.kubernetes.io/component=singleuser-server"

        def scheduled_then_deleted() -> bool:
            out = kubectl(realkube, "get", "events", "-n", deployed.ns, "-o", "json",
                          "--field-selector", "reason=FailedScheduling")[1]  # fmt: skip
            seen = {e["involvedObject"]["name"] for e in json.loads(out)["items"]}
            return pods <= seen and not stored(realkube, deployed.ns, "pods", selector)

        await asyncio.to_thread(eventually, scheduled_then_deleted, "pods made, then removed")
        claims = stored(realkube, deployed.ns, "persistentvolumeclaims", selector)
        assert {c["metadata"]["annotations"][names.USER_ANNOTATION] for c in claims} == set(USERS)
        async with (
            aiohttp.ClientSession() as session,
            session.get(podgate.ops_url + "/metrics") as answer,
        ):
            calls = kube_calls(await answer.text())
    finally:
        code = podgate.stop()
    records = stored(realkube, deployed.ns, "configmaps", names.label_selector(RECORD_LABELS))
    assert {r["metadata"]["annotations"][names.USER_ANNOTATION] for r in records} == set(USERS)
    log = podgate.log_text()
    refused = {call: n for call, n in calls.items() if call[2] in ("401", "403")}
    assert not refused, f"refused calls {refused}; log: {log[-3000:]}"
    # A status 403, not the milliseconds of a timestamp (".403Z").
    assert not re.search(r"(?<![\d.])403(?!\d)", log) and "Forbidden" not in log, log[-3000:]
    assert calls.get(("create", "pods", "201")) == len(USERS), calls
    done = {(verb, resource) for verb, resource, status in calls if status.startswith("2")}
    made = [
        ("list", "pods"), ("watch", "pods"), ("create", "pods"), ("delete", "pods"),
        ("create", "persistentvolumeclaims"), ("create", "configmaps"), ("patch", "configmaps"),
        ("list", "configmaps"), ("watch", "configmaps"), ("watch", "events"),
    ]  # fmt: skip
    for call in made:
        assert call in done, f"{call} not made: {sorted(calls)}"
    assert code == 0, log[-3000:]
