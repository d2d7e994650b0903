"""deploy/: the kustomizations render, validate against the Kubernetes schema and line up.

Each kustomization is rendered with the real kubectl, every object checked
against the Kubernetes OpenAPI schema (kubernetes-validate, offline, strict),
then applied with kubectl to a kubesim cluster and read back, so names,
labels and selectors are checked on what a cluster stores, with kubesim's
own label-selector engine. The Role is checked against the calls a real
podgate makes while it spawns, stops, culls and shows the admin panel.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes_validate
import pytest
import yaml
from hub_kit import Browser, start_podgate

from control.manifests import pod_manifest
from kubesim.cluster import SimCluster
from podgate.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZATIONS = [
    "deploy",
    "deploy/overlays/example",
    "deploy/overlays/ingress-tls",
    "deploy/overlays/oidc",
    "deploy/overlays/loadbalancer-tls",
]
KUBE_VERSION = "1.30.0"  # the oldest Kubernetes these manifests promise to fit

Obj = dict[str, Any]
GENERATED = ("ConfigMap", "Secret")  # kustomize's generators add a content hash to the name

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")


def render(kustomization: str) -> list[Obj]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / kustomization)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Obj]]:
    return request.param, render(request.param)


def one(objects: list[Obj], kind: str, name: str = "") -> Obj:
    """The one object of `kind` (named `name`; generated ones carry a hash suffix)."""

    def fits(obj: Obj) -> bool:
        found = obj["metadata"]["name"]
        return not name or found == name or (found.startswith(name + "-") and kind in GENERATED)

    matches = [o for o in objects if o["kind"] == kind and fits(o)]
    assert len(matches) == 1, f"expected one {kind} {name!r}, got {len(matches)}"
    return matches[0]


def config_of(objects: list[Obj], tmp_path: Path) -> Config:
    """The ConfigMap's config.yaml loaded as podgate loads it, secret files stubbed."""
    text = one(objects, "ConfigMap", "podgate-config")["data"]["config.yaml"]
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "users.yaml").write_text("# none\n")
    (secrets / "api-tokens.yaml").write_text("[]\n")
    path = tmp_path / "config.yaml"
    path.write_text(text.replace("/etc/podgate/secrets/", f"{secrets}/"))
    return load_config(path, {"PODGATE_COOKIE_SECRET": "x" * 32})


def selector(match_labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))


# -- rendering and schema ---------------------------------------------------------


def test_every_object_fits_the_kubernetes_schema(rendered: tuple[str, list[Obj]]) -> None:
    _name, objects = rendered
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {e.message} at {e.path}")


def test_a_schema_error_is_caught() -> None:
    """The check above can fail: a misspelt field of a Deployment is an error."""
    deployment = one(render("deploy"), "Deployment")
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


def test_everything_lives_in_the_spawner_namespace(
    rendered: tuple[str, list[Obj]], tmp_path: Path
) -> None:
    """podgate's Role is namespaced: user pods must go where the Role is."""
    _name, objects = rendered
    config = config_of(objects, tmp_path)
    namespaces = {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"}
    assert namespaces == {config.spawner.namespace}
    # The namespace comes with the manifests, Pod Security "restricted" enforced.
    labels = one(objects, "Namespace", config.spawner.namespace)["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert config.cluster.kind == "kube" and config.cluster.kubeconfig is None
    assert config.auth.kind in ("password", "oidc") and config.log_format == "json"
    if config.auth.kind == "oidc":  # its client secret comes from the mounted Secret
        assert config.auth.oidc is not None and config.auth.oidc.client_secret is None
        assert config.auth.oidc.client_secret_file == str(tmp_path / "secrets/oidc-client-secret")


def test_deployment_promises(rendered: tuple[str, list[Obj]], tmp_path: Path) -> None:
    _name, objects = rendered
    config = config_of(objects, tmp_path)
    spec = one(objects, "Deployment")["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    grace = pod["terminationGracePeriodSeconds"]
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert grace > pre_stop + config.shutdown_grace_seconds
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"/tmp", "/etc/podgate/config.yaml"} <= {
        m["mountPath"] for m in container["volumeMounts"]
    }
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    public = ports["https"] if config.tls is not None else ports["http"]
    assert (config.listen_address[1], config.ops_address[1]) == (public, ports["ops"])
    if config.tls is not None and config.tls.redirect_http is not None:
        assert ports["http-redirect"] == int(config.tls.redirect_http.rsplit(":", 1)[1])
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
    assert {"requests", "limits"} <= set(container["resources"])
    assert pod["topologySpreadConstraints"]


def test_image_config_is_the_configmap() -> None:
    """The Dockerfile's built-in config is byte for byte the base ConfigMap's config.yaml."""
    copies = re.findall(
        r"^COPY (\S+) /etc/podgate/config\.yaml$", (ROOT / "Dockerfile").read_text(), re.M
    )
    assert copies == ["deploy/base/config.yaml"]
    data = one(render("deploy"), "ConfigMap", "podgate-config")["data"]["config.yaml"]
    assert data == (ROOT / "deploy/base/config.yaml").read_text()


def test_secret_placeholders_are_marked() -> None:
    """The shipped secrets are placeholders that say so, never usable values."""
    for overlay in ("deploy", "deploy/overlays/example"):
        secret = one(render(overlay), "Secret", "podgate-secrets")
        assert set(secret["data"]) == {"cookie-secret", "users.yaml", "api-tokens.yaml"}
    # The identity-provider overlay adds the client secret to the same mounted Secret.
    secret = one(render("deploy/overlays/oidc"), "Secret", "podgate-secrets")
    assert "oidc-client-secret" in secret["data"]
    for path in sorted((ROOT / "deploy").rglob("secrets/*")):
        assert "REPLACE-ME" in path.read_text() or "PLACEHOLDER" in path.read_text(), path


# -- applied to kubesim: names, labels and selectors ---------------------------


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[SimCluster, Path]]:
    sim = SimCluster("127.0.0.1", 0, tls=True, kubelet=None)
    await sim.start()
    kubeconfig = tmp_path / "kubeconfig"
    sim.write_kubeconfig(kubeconfig)
    try:
        yield sim, kubeconfig
    finally:
        await sim.stop()


async def kubectl(kubeconfig: Path, *args: str, stdin: str = "") -> str:
    process = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(kubeconfig),
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def pods_selected(kubeconfig: Path, namespace: str, match_labels: dict[str, str]) -> set[str]:
    """Pod names kubesim's own selector engine picks for `match_labels`."""
    out = await kubectl(
        kubeconfig, "get", "pods", "-n", namespace, "-l", selector(match_labels), "-o", "json"
    )
    return {p["metadata"]["name"] for p in json.loads(out)["items"]}


async def apply_rendered(kubeconfig: Path, objects: list[Obj], tmp_path: Path) -> Config:
    """Apply the rendered objects to kubesim in their namespace; the config they carry."""
    config = config_of(objects, tmp_path)
    await kubectl(kubeconfig, "create", "namespace", config.spawner.namespace)
    manifest = yaml.safe_dump_all(objects)
    await kubectl(kubeconfig, "apply", "-f", "-", stdin=manifest)
    return config


async def test_applied_objects_line_up(
    rendered: tuple[str, list[Obj]],
    cluster: tuple[SimCluster, Path],
    tmp_path: Path,
) -> None:
    _name, objects = rendered
    _sim, kubeconfig = cluster
    config = await apply_rendered(kubeconfig, objects, tmp_path)
    ns = config.spawner.namespace
    manifest = yaml.safe_dump_all(objects)
    stored = json.loads(
        await kubectl(kubeconfig, "get", "-n", ns, "-o", "json", "-f", "-", stdin=manifest)
    )
    stored_objects: list[Obj] = stored["items"]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in stored_objects) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in objects
    )

    # One podgate pod from the Deployment's template, one user pod from the spawner.
    deployment = one(stored_objects, "Deployment")
    template = deployment["spec"]["template"]
    podgate_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": "podgate-replica"},
        "spec": template["spec"],
    }
    user_pod = pod_manifest("alice", config.spawner, config.spawner.profile(None), "t" * 32)
    for pod in (podgate_pod, user_pod):
        await kubectl(kubeconfig, "create", "-n", ns, "-f", "-", stdin=json.dumps(pod))
    podgate_only, users_only = {"podgate-replica"}, {user_pod["metadata"]["name"]}

    async def picks(match_labels: dict[str, str]) -> set[str]:
        return await pods_selected(kubeconfig, ns, match_labels)

    assert await picks(deployment["spec"]["selector"]["matchLabels"]) == podgate_only
    for service in (o for o in stored_objects if o["kind"] == "Service"):
        assert await picks(service["spec"]["selector"]) == podgate_only, service["metadata"]
    pdb = one(stored_objects, "PodDisruptionBudget")
    assert await picks(pdb["spec"]["selector"]["matchLabels"]) == podgate_only
    assert pdb["spec"]["minAvailable"] == 1
    public = one(stored_objects, "Service", "podgate")
    # The public Service reaches the container's named ports, one of them podgate's listen.
    container = template["spec"]["containers"][0]
    named_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    targets = [p["targetPort"] for p in public["spec"]["ports"]]
    assert set(targets) <= set(named_ports), targets
    assert config.listen_address[1] in {named_ports[t] for t in targets}
    assert public["spec"]["ports"][0]["port"] in (80, 443)
    ops = one(stored_objects, "Service", "podgate-ops")
    assert ops["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert ops["metadata"]["annotations"]["prometheus.io/port"] == str(config.ops_address[1])

    policies = {
        o["metadata"]["name"]: o["spec"] for o in stored_objects if o["kind"] == "NetworkPolicy"
    }
    user_in = policies["podgate-user-pods-ingress"]
    assert await picks(user_in["podSelector"]["matchLabels"]) == users_only
    (rule,) = user_in["ingress"]
    (source,) = rule["from"]
    assert await picks(source["podSelector"]["matchLabels"]) == podgate_only
    assert rule["ports"] == [{"protocol": "TCP", "port": config.spawner.port}]
    user_out = policies["podgate-user-pods-egress"]
    assert await picks(user_out["podSelector"]["matchLabels"]) == users_only
    assert user_out["egress"] == [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]}
    ]
    podgate_out = policies["podgate-egress"]
    assert podgate_out["policyTypes"] == ["Egress"]
    assert await picks(podgate_out["podSelector"]["matchLabels"]) == podgate_only
    to_pods = [r for r in podgate_out["egress"] if "podSelector" in r["to"][0]]
    assert await picks(to_pods[0]["to"][0]["podSelector"]["matchLabels"]) == users_only
    assert to_pods[0]["ports"] == [{"protocol": "TCP", "port": config.spawner.port}]

    # Every name the Deployment refers to exists, with the keys it reads.
    pod_spec = template["spec"]
    names = {(o["kind"], o["metadata"]["name"]): o for o in stored_objects}
    assert ("ServiceAccount", pod_spec["serviceAccountName"]) in names
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert ("ConfigMap", volumes["config"]["configMap"]["name"]) in names
    secret = names["Secret", volumes["secrets"]["secret"]["secretName"]]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pod_spec["containers"][0]["env"]}
    assert env["PODGATE_COOKIE_SECRET"]["name"] == secret["metadata"]["name"]
    assert env["PODGATE_COOKIE_SECRET"]["key"] in secret["data"]
    for item in volumes["secrets"]["secret"]["items"]:
        assert item["key"] in secret["data"]
    mounted = {
        f"{m['mountPath']}/{item['path']}"
        for m in pod_spec["containers"][0]["volumeMounts"]
        if m["name"] == "secrets"
        for item in volumes["secrets"]["secret"]["items"]
    }
    raw = yaml.safe_load(one(objects, "ConfigMap", "podgate-config")["data"]["config.yaml"])
    # Every secret file the config names (users, API tokens, an OIDC client secret).
    named = {raw["api_tokens_file"], raw["auth"].get("users_file")}
    named.add((raw["auth"].get("oidc") or {}).get("client_secret_file"))
    assert named - {None} <= mounted
    assert len(named - {None}) >= 2
    for binding in (o for o in stored_objects if o["kind"] == "RoleBinding"):
        assert ("Role", binding["roleRef"]["name"]) in names
        for subject in binding["subjects"]:
            assert ("ServiceAccount", subject["name"]) in names
            assert subject["namespace"] == ns


# -- who may connect to podgate: the NetworkPolicies, evaluated ---------------


async def peer_admits(kubeconfig: Path, policy_ns: str, peer: Obj, source: tuple[str, str]) -> bool:
    """Whether one `from` peer of a policy admits the pod `source` (namespace, name).

    Kubernetes' rules: a podSelector alone picks pods of the policy's namespace,
    a namespaceSelector alone every pod of the namespaces it picks, both
    together the pods they both pick; kubesim's selector engine does the picking.
    """
    source_ns, source_pod = source
    if "namespaceSelector" in peer:
        labels = peer["namespaceSelector"].get("matchLabels", {})
        out = await kubectl(kubeconfig, "get", "namespaces", "-l", selector(labels), "-o", "json")
        if source_ns not in {n["metadata"]["name"] for n in json.loads(out)["items"]}:
            return False
    elif source_ns != policy_ns:
        return False
    if "podSelector" not in peer:
        return True
    labels = peer["podSelector"].get("matchLabels", {})
    return source_pod in await pods_selected(kubeconfig, source_ns, labels)


async def connection_allowed(
    kubeconfig: Path,
    policies: list[Obj],
    destination: tuple[str, str],
    port: int,
    source: tuple[str, str],
) -> bool:
    """Whether the ingress policies let pod `source` connect to pod `destination` on `port`."""
    dest_ns, dest_pod = destination
    isolating = [
        p
        for p in policies
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and p["metadata"].get("namespace", dest_ns) == dest_ns
        and dest_pod
        in await pods_selected(kubeconfig, dest_ns, p["spec"]["podSelector"]["matchLabels"])
    ]
    if not isolating:
        return True
    for policy in isolating:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and port not in {p["port"] for p in ports}:
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                if await peer_admits(kubeconfig, dest_ns, peer, source):
                    return True
    return False


async def test_ops_port_admits_monitoring_and_never_user_pods(
    rendered: tuple[str, list[Obj]],
    cluster: tuple[SimCluster, Path],
    tmp_path: Path,
) -> None:
    _name, objects = rendered
    _sim, kubeconfig = cluster
    config = await apply_rendered(kubeconfig, objects, tmp_path)
    ns = config.spawner.namespace
    await kubectl(kubeconfig, "create", "namespace", "monitoring")
    template = one(objects, "Deployment")["spec"]["template"]

    def pod(name: str, labels: dict[str, str], spec: Obj | None = None) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": labels},
                "spec": spec or {"containers": [{"name": "c", "image": "x"}]},
            }
        )

    user_pod = pod_manifest("mallory", config.spawner, config.spawner.profile(None), "t" * 32)
    await kubectl(kubeconfig, "create", "-n", ns, "-f", "-", stdin=json.dumps(user_pod))
    replica = pod("podgate-replica", template["metadata"]["labels"], template["spec"])
    await kubectl(kubeconfig, "create", "-n", ns, "-f", "-", stdin=replica)
    prometheus = pod("prometheus-0", {"app.kubernetes.io/name": "prometheus"})
    await kubectl(kubeconfig, "create", "-n", "monitoring", "-f", "-", stdin=prometheus)
    other = pod("grafana-0", {"app.kubernetes.io/name": "grafana"})
    await kubectl(kubeconfig, "create", "-n", "monitoring", "-f", "-", stdin=other)

    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    podgate = (ns, "podgate-replica")
    user = (ns, user_pod["metadata"]["name"])
    public, ops = config.listen_address[1], config.ops_address[1]

    async def allowed(source: tuple[str, str], port: int) -> bool:
        return await connection_allowed(kubeconfig, policies, podgate, port, source)

    assert await allowed(user, public)  # user pods call /hub/api on the public port
    assert not await allowed(user, ops)
    assert await allowed(("monitoring", "prometheus-0"), ops)
    assert not await allowed(("monitoring", "grafana-0"), ops)
    # And user pods only hear podgate, on the spawner's port.
    assert await connection_allowed(kubeconfig, policies, user, config.spawner.port, podgate)
    assert not await connection_allowed(
        kubeconfig, policies, user, config.spawner.port, ("monitoring", "prometheus-0")
    )


# -- RBAC: exactly what podgate calls -------------------------------------------

VERBS = ("create", "get", "list", "watch", "patch", "delete")
_API_RESOURCE = {"metrics.k8s.io/v1beta1/pods": ("metrics.k8s.io", "pods")}


def granted(objects: list[Obj]) -> set[tuple[str, str, str]]:
    """(api group, resource, verb) every Role grants."""
    grants = set()
    for role in (o for o in objects if o["kind"] == "Role"):
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    grants.update((group, resource, verb) for verb in rule["verbs"])
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    return grants


def as_grant(resource: str, verb: str) -> tuple[str, str, str]:
    group, plural = _API_RESOURCE.get(resource, ("", resource))
    return group, plural, verb


@pytest.fixture(scope="module")
def calls_in_code() -> set[tuple[str, str, str]]:
    """(group, resource, verb) that the code under control/ could call: a verb called on
    a kube client somewhere and a resource name written in the code."""
    source = "\n".join(p.read_text() for p in (ROOT / "control").rglob("*.py"))
    source += (ROOT / "podgate/control_plane.py").read_text()
    verbs = set(re.findall(r"kube\.(\w+)\(", source)) & set(VERBS)
    known = ("pods", "persistentvolumeclaims", "events", "configmaps")
    resources = {r for r in known if f'"{r}"' in source}
    resources |= {r for r in _API_RESOURCE if r in source}
    return {as_grant(r, v) for r in resources for v in verbs}


async def scrape_kube_calls(ops_url: str) -> set[tuple[str, str, str]]:
    """(group, resource, verb) of every Kubernetes request podgate counted."""
    async with aiohttp.ClientSession() as session, session.get(ops_url + "/metrics") as r:
        text = await r.text()
    calls = set()
    pattern = r"^podgate_kube_api_requests_total\{(.*)\} (\S+)$"
    for labels, value in re.findall(pattern, text, re.M):
        if float(value) > 0:
            found = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            calls.add(as_grant(found["resource"], found["verb"]))
    return calls


@pytest.fixture
async def busy_podgate() -> AsyncIterator[Any]:
    """A podgate with storage, the culler, activity writes and tokens: every kind of call."""
    podgate = await start_podgate(
        {
            "auth": {"admins": ["root"]},
            "api_tokens": [{"name": "ops", "token": "ops-token-0123456789", "scopes": ["admin"]}],
            "spawner": {"storage": {"size": "1Gi"}},
            "culler": {"enabled": True, "timeout": 2, "every": 0.2, "activity_every": 0.2},
        }
    )
    try:
        yield podgate
    finally:
        await podgate.stop()


async def eventually_stopped(ops_url: str, user: str, seconds: float = 15.0) -> None:
    headers = {"Authorization": "token ops-token-0123456789"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(int(seconds / 0.1)):
            async with session.get(f"{ops_url}/hub/api/users/{user}") as r:
                if (await r.json()).get("servers") == {}:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{user}'s server was not stopped in {seconds} s")


@pytest.fixture(scope="module")
def base_objects() -> list[Obj]:
    return render("deploy") + render("deploy/overlays/example")


async def test_role_covers_every_call_a_real_podgate_makes(
    busy_podgate: Any, base_objects: list[Obj]
) -> None:
    pg = busy_podgate
    async with Browser(pg.public_url) as root, Browser(pg.public_url) as alice:
        events = await alice.start_server("alice")
        assert events[-1].get("ready"), events
        assert (await alice.get("/user/alice/")).status == 200  # activity to write
        await root.login("root")
        admin = await root.get("/hub/admin/data")  # usage from metrics.k8s.io
        assert admin.status == 200
        await eventually_stopped(pg.ops_url, "alice")  # the culler stops her
    # The embedded kubesim's namespace is made at start; in-cluster podgate never does it.
    calls = await scrape_kube_calls(pg.ops_url) - {("", "namespaces", "create")}
    expected_minimum = {
        ("", "pods", "create"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("", "pods", "delete"),
        ("", "pods", "patch"),
        ("", "persistentvolumeclaims", "create"),
        ("", "events", "watch"),
        ("metrics.k8s.io", "pods", "list"),
        ("", "configmaps", "list"),  # the user records: watched, written at sign-in
        ("", "configmaps", "watch"),
        ("", "configmaps", "create"),
        ("", "configmaps", "patch"),
    }
    assert expected_minimum <= calls, "the run did not exercise what it means to"
    example = granted(render("deploy/overlays/example"))
    assert calls <= example, f"calls the Role does not allow: {calls - example}"
    base = granted(render("deploy"))
    assert {c for c in calls if c[0] == ""} <= base


def test_role_grants_nothing_the_code_never_calls(
    calls_in_code: set[tuple[str, str, str]], base_objects: list[Obj]
) -> None:
    assert granted(base_objects) <= calls_in_code
    assert not any(r == "secrets" for _, r, _ in granted(base_objects))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    yield


def test_grafana_dashboard_ships_as_a_configmap() -> None:
    """Grafana's dashboard sidecar finds the dashboard by its label; the JSON is intact."""
    dashboard = one(render("deploy"), "ConfigMap", "podgate-grafana-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    text = dashboard["data"]["podgate-dashboard.json"]
    assert text == (ROOT / "deploy/grafana/podgate-dashboard.json").read_text()
    assert json.loads(text)["panels"]
