"""kubesim's kubelet as the node of a real control plane (`podgate sim --node-only`).

The real kube-scheduler places the pods, the real PV controller binds the
claims, the real controllers roll out Deployments; only the kubelet is
kubesim's. Everything is driven with kubectl, as a user would. One agent
runs for the module (its Node is deleted at the end, with the StorageClass
and volumes it made, so other modules still see a cluster without nodes).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from node_agent_kit import AgentRun, agent_command, remove_agent_traces, start_agent
from realkube_kit import RealKube, run_kubectl, version_of

from kubesim.kubelet import KubeletConfig, NodeCapacity
from kubesim.nodeagent import AgentError, NodeAgent

DEADLINE = 60.0
NODE = "kubesim-node"
PY = sys.executable

# Serves HTTP on the pod's address and answers with the User-Agent it got
# last (the kubelet's probe sets it before any test request comes).
SERVER = (
    "import http.server,sys\n"
    "seen = {'agent': ''}\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        if self.path == '/healthz': seen['agent'] = self.headers.get('User-Agent', '')\n"
    "        body = ('probe-agent=' + seen['agent']).encode()\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()\n"
)
POD_IP_ENV = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="kubesim-agent-test-"))
    path.chmod(0o711)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.fixture(scope="module")
def agent(realkube: RealKube, workdir: Path) -> Iterator[AgentRun]:
    namespaces_before = set(namespaces(realkube))
    run = start_agent(realkube.kubeconfig, NODE, workdir / "data")
    try:
        yield run
    finally:
        for ns in set(namespaces(realkube)) - namespaces_before:
            kubectl(realkube, "delete", "namespace", ns, "--wait=false", ok=False)
        # The agent still runs while the namespaces empty, so their pods finish
        # deletion and the provisioner deletes Released volumes.
        eventually(lambda: not set(namespaces(realkube)) - namespaces_before,
                   "the test namespaces to be gone", ok=True)  # fmt: skip
        run.stop()
        remove_agent_traces(realkube, [NODE])


def kubectl(kube: RealKube, *args: str, stdin: str = "", ok: bool = True) -> tuple[int, str]:
    return run_kubectl(kube.kubeconfig, *args, stdin=stdin, ok=ok)


def namespaces(kube: RealKube) -> list[str]:
    _, out = kubectl(kube, "get", "namespaces", "-o", "name")
    return [line.split("/", 1)[1] for line in out.split() if line.startswith("namespace/t-")]


def eventually(check: Callable[[], Any], what: str, ok: bool = False) -> Any:
    """The first truthy answer of check() within DEADLINE; else fail (or, with ok, give up)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(0.3)
    if not ok:
        raise AssertionError(f"not within {DEADLINE:.0f}s: {what}")
    return None


def new_namespace(kube: RealKube) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl(kube, "create", "namespace", name)
    eventually(
        lambda: kubectl(kube, "get", "serviceaccount", "default", "-n", name, ok=False)[0] == 0,
        "the namespace's default ServiceAccount",
    )
    return name


def apply(kube: RealKube, ns: str, *objects: dict[str, Any]) -> None:
    kubectl(kube, "apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump_all(objects))


def get(kube: RealKube, kind: str, name: str, ns: str = "") -> dict[str, Any] | None:
    where = ["-n", ns] if ns else []
    code, out = kubectl(kube, "get", kind, name, *where, "-o", "json", ok=False)
    return json.loads(out) if code == 0 else None


def pod_manifest(name: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", **container}], **spec}}  # fmt: skip


def serving(port: int) -> dict[str, Any]:
    return {
        "image": "kubesim-test/web:1",
        "command": [PY, "-c", SERVER],
        "args": ["$(POD_IP)", str(port)],
        "env": [POD_IP_ENV],
        "ports": [{"containerPort": port}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 2},
    }


def ready(pod: dict[str, Any] | None) -> bool:
    conditions = {c["type"]: c["status"] for c in ((pod or {}).get("status") or {}).get(
        "conditions") or []}  # fmt: skip
    return conditions.get("Ready") == "True"


def waiting_reason(pod: dict[str, Any] | None) -> str:
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or [{}]
    return str((statuses[0].get("state") or {}).get("waiting", {}).get("reason", ""))


def test_node_registers_ready_and_renews_its_lease(realkube: RealKube, agent: AgentRun) -> None:
    assert agent.ready_line.startswith(f"kubesim node agent: node {NODE} is Ready on https://")
    node = get(realkube, "node", NODE)
    assert node is not None
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True" and conditions["MemoryPressure"] == "False"
    assert node["status"]["allocatable"]["pods"] == "20k"  # 20,000, as the server writes it
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    assert node["status"]["nodeInfo"]["kubeletVersion"] == version_of(realkube)
    lease = get(realkube, "lease", NODE, "kube-node-lease")
    assert lease is not None and lease["spec"]["holderIdentity"] == NODE
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
    first = lease["spec"]["renewTime"]
    renewed = eventually(
        lambda: (get(realkube, "lease", NODE, "kube-node-lease") or {})
        .get("spec", {}).get("renewTime", first) != first,
        "the Lease to be renewed",
    )  # fmt: skip
    assert renewed
    # The real node lifecycle controller left it Ready and untainted.
    node = get(realkube, "node", NODE)
    assert node is not None and not (node["spec"].get("taints") or [])


def test_pod_applied_with_kubectl_is_scheduled_runs_and_serves(
    realkube: RealKube, agent: AgentRun
) -> None:
    ns = new_namespace(realkube)
    port = 20_000 + uuid.uuid4().int % 10_000
    started = time.monotonic()
    apply(realkube, ns, pod_manifest("web", serving(port)))
    pod = eventually(lambda: (p := get(realkube, "pod", "web", ns)) and ready(p) and p,
                     "the pod to be Ready")  # fmt: skip
    took = time.monotonic() - started
    status = pod["status"]
    assert pod["spec"]["nodeName"] == NODE and status["phase"] == "Running"
    assert status["podIP"].startswith("127.") and status["podIP"] not in ("127.0.0.1", "127.0.1.1")
    assert status["podIPs"] == [{"ip": status["podIP"]}] and status["hostIP"] == "127.0.0.1"
    (container,) = status["containerStatuses"]
    assert container["ready"] and container["restartCount"] == 0 and "running" in container["state"]
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        f"http://{status['podIP']}:{port}/", timeout=5
    ) as answer:
        body = answer.read().decode()
    # The probe speaks as a kubelet of the server's own minor release.
    minor = re.match(r"v(\d+\.\d+)", version_of(realkube))
    assert minor and body == f"probe-agent=kube-probe/{minor.group(1)}"
    # Scheduled comes from the real scheduler, the rest from our kubelet, all through the API.
    _, out = kubectl(realkube, "get", "events", "-n", ns, "-o", "json")
    seen = {(e["reason"], e["source"].get("component") or e.get("reportingComponent"))
            for e in json.loads(out)["items"]}  # fmt: skip
    assert ("Scheduled", "default-scheduler") in seen
    assert {("Pulled", "kubelet"), ("Created", "kubelet"), ("Started", "kubelet")} <= seen
    _, table = kubectl(realkube, "get", "events", "-n", ns)
    assert "Started container main" in table
    assert took < 30, f"kubectl apply -> Ready took {took:.1f}s"


def test_crash_loop_reports_back_off_and_restart_count(realkube: RealKube, agent: AgentRun) -> None:
    ns = new_namespace(realkube)
    apply(realkube, ns, pod_manifest("crash", {"image": "x", "command": [PY, "-c", "exit(3)"]}))
    pod = eventually(
        lambda: (p := get(realkube, "pod", "crash", ns)) and waiting_reason(p) == "CrashLoopBackOff"
        and p,
        "CrashLoopBackOff",
    )  # fmt: skip
    (container,) = pod["status"]["containerStatuses"]
    assert container["restartCount"] >= 1
    assert container["lastState"]["terminated"]["exitCode"] == 3
    _, table = kubectl(realkube, "get", "pod", "crash", "-n", ns)
    assert "CrashLoopBackOff" in table
    _, out = kubectl(realkube, "get", "events", "-n", ns, "--field-selector", "reason=BackOff")
    assert "Back-off restarting failed container main" in out


def test_missing_image_is_err_image_pull_then_back_off(realkube: RealKube, agent: AgentRun) -> None:
    ns = new_namespace(realkube)
    apply(realkube, ns, pod_manifest("bad", {"image": "kubesim-test/no-such-program:1"}))
    reasons: set[str] = set()

    def back_off() -> bool:
        reasons.add(waiting_reason(get(realkube, "pod", "bad", ns)))
        return "ImagePullBackOff" in reasons

    eventually(back_off, "ImagePullBackOff")
    pod = get(realkube, "pod", "bad", ns)
    assert pod is not None and pod["status"]["phase"] == "Pending"
    _, out = kubectl(realkube, "get", "events", "-n", ns)
    assert "ErrImagePull" in out and 'Failed to pull image "kubesim-test/no-such-program:1"' in out


def test_over_its_memory_limit_a_container_is_oom_killed(
    realkube: RealKube, agent: AgentRun
) -> None:
    ns = new_namespace(realkube)
    hog = (
        "import time; b = bytearray(400 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)"
    )
    container = {"image": "x", "command": [PY, "-c", hog],
                 "resources": {"limits": {"memory": "100Mi"}}}  # fmt: skip
    apply(realkube, ns, pod_manifest("hog", container, restartPolicy="Never"))
    pod = eventually(
        lambda: (p := get(realkube, "pod", "hog", ns)) and p["status"].get("phase") == "Failed"
        and p,
        "the pod to fail",
    )  # fmt: skip
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    _, table = kubectl(realkube, "get", "pod", "hog", "-n", ns)
    assert "OOMKilled" in table


def test_graceful_delete_stops_the_process_and_removes_the_pod(
    realkube: RealKube, agent: AgentRun, workdir: Path
) -> None:
    ns = new_namespace(realkube)
    marker = workdir / f"term-{uuid.uuid4().hex[:6]}"
    shared = marker.parent / "shared"
    shared.mkdir(exist_ok=True)
    shared.chmod(0o1777)
    marker = shared / marker.name
    script = (
        "import signal,sys,time,pathlib\n"
        "def bye(*a):\n"
        f"    pathlib.Path({str(marker)!r}).write_text('TERM'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        f"pathlib.Path({str(marker)!r}).write_text('listening')\n"
        "time.sleep(600)\n"
    )
    apply(realkube, ns, pod_manifest("sleeper", {"image": "x", "command": [PY, "-c", script]}))
    eventually(lambda: ready(get(realkube, "pod", "sleeper", ns)), "the pod to be Ready")
    # Ready means started, not yet past the interpreter's start-up: a SIGTERM
    # before the handler is in place would end it without a word.
    eventually(lambda: marker.exists(), "the handler to be in place")
    started = time.monotonic()
    kubectl(realkube, "delete", "pod", "sleeper", "-n", ns, "--timeout=60s")
    assert get(realkube, "pod", "sleeper", ns) is None
    assert marker.read_text() == "TERM"  # SIGTERM first, within the grace period
    assert time.monotonic() - started < 20
    _, out = kubectl(realkube, "get", "events", "-n", ns)
    assert "Stopping container main" in out


def test_deployment_rolls_out_on_the_node(realkube: RealKube, agent: AgentRun) -> None:
    ns = new_namespace(realkube)
    port = 20_000 + uuid.uuid4().int % 10_000
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 5, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "main", **serving(port)}]}}},
    }  # fmt: skip
    apply(realkube, ns, deployment)
    kubectl(realkube, "rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    _, out = kubectl(realkube, "get", "pods", "-n", ns, "-l", "app=web", "-o", "json")
    pods = json.loads(out)["items"]
    assert len(pods) == 5 and all(ready(p) for p in pods)
    assert len({p["status"]["podIP"] for p in pods}) == 5  # each its own address


def test_claim_gets_a_provisioned_volume_and_binds(realkube: RealKube, agent: AgentRun) -> None:
    ns = new_namespace(realkube)
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "home"},
             "spec": {"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "1Gi"}}}}  # fmt: skip
    writer = pod_manifest(
        "writer",
        {"image": "x", "command": [PY, "-c",
         "import os,time; open(os.environ['KUBESIM_VOLUME_HOME'] + '/hello', 'w').write('hi');"
         " time.sleep(600)"],
         "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}]},
        volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": "home"}}],
    )  # fmt: skip
    apply(realkube, ns, claim, writer)
    # No class named: the default one is ours (the cluster had none).
    bound = eventually(
        lambda: (c := get(realkube, "pvc", "home", ns)) and c["status"].get("phase") == "Bound"
        and c,
        "the claim to be Bound",
    )  # fmt: skip
    assert bound["spec"]["storageClassName"] == "kubesim-local"
    volume = get(realkube, "pv", bound["spec"]["volumeName"])
    assert volume is not None and volume["status"]["phase"] == "Bound"
    host = Path(volume["spec"]["hostPath"]["path"])
    assert host == agent.data_dir / "claims" / ns / "home"
    eventually(lambda: ready(get(realkube, "pod", "writer", ns)), "the pod to be Ready")
    eventually(lambda: (host / "hello").exists(), "the pod's file in the volume")
    assert (host / "hello").read_text() == "hi"


def test_cli_errors_are_one_clear_line(realkube: RealKube, workdir: Path) -> None:
    def agent_fails(kubeconfig: Path, *extra: str) -> tuple[int, str]:
        result = subprocess.run(agent_command(kubeconfig, *extra), capture_output=True,
                                text=True, timeout=60, check=False)  # fmt: skip
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stdout == ""
        return result.returncode, result.stderr.strip()

    code, err = agent_fails(workdir / "missing.kubeconfig")
    assert code == 2 and err.startswith("kubesim node agent: cannot read the kubeconfig")
    document = yaml.safe_load(realkube.kubeconfig.read_text())
    code, err = agent_fails(realkube.kubeconfig, "--context", "nope")
    assert code == 2 and "has no context named 'nope'" in err
    down = workdir / "down.kubeconfig"
    document["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    down.write_text(yaml.safe_dump(document))
    code, err = agent_fails(down)
    assert code == 1 and "cannot reach the API server at https://127.0.0.1:1" in err
    wrong = workdir / "wrong.kubeconfig"
    document = yaml.safe_load(realkube.kubeconfig.read_text())
    document["users"][0]["user"]["token"] = "not-a-token"
    wrong.write_text(yaml.safe_dump(document))
    code, err = agent_fails(wrong)
    assert code == 1 and "did not accept the kubeconfig's credentials (401 Unauthorized)" in err


def test_a_service_account_without_rights_gets_a_clear_403(
    realkube: RealKube, agent: AgentRun, workdir: Path
) -> None:
    ns = new_namespace(realkube)
    kubectl(realkube, "create", "serviceaccount", "weak", "-n", ns)
    _, token = kubectl(realkube, "create", "token", "weak", "-n", ns)
    document = yaml.safe_load(realkube.kubeconfig.read_text())
    document["users"][0]["user"] = {"token": token.strip()}
    weak = workdir / "weak.kubeconfig"
    weak.write_text(yaml.safe_dump(document))
    result = subprocess.run(agent_command(weak, "--node-name", "kubesim-weak"),
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "forbids what the node agent must do (403 Forbidden)" in result.stderr
    assert f"system:serviceaccount:{ns}:weak" in result.stderr
    assert get(realkube, "node", "kubesim-weak") is None


async def test_node_agent_in_process_pauses_and_resumes(
    realkube: RealKube, agent: AgentRun, workdir: Path
) -> None:
    """The Python interface the suites' fixtures use: start, version, nodes, set_paused, stop."""
    node = "kubesim-inproc"
    data_dir = workdir / "inproc"
    data_dir.mkdir()
    data_dir.chmod(0o711)
    config = KubeletConfig(nodes=(NodeCapacity(node),), data_dir=data_dir)
    node_agent = NodeAgent(realkube.kubeconfig, config)

    async def held() -> dict[str, Any] | None:  # kubectl in a thread: the agent keeps running
        return await asyncio.to_thread(get, realkube, "pod", "held", ns)

    async def until(check: Callable[[dict[str, Any] | None], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not check(await held()):
            assert time.monotonic() < deadline, f"not within {DEADLINE:.0f}s: {what}"
            await asyncio.sleep(0.3)

    await node_agent.start()
    ns = ""
    try:
        assert node_agent.nodes == [node] and node_agent.version == version_of(realkube)
        ns = await asyncio.to_thread(new_namespace, realkube)
        node_agent.set_paused(True)
        command = [PY, "-c", "import time; time.sleep(600)"]
        manifest = pod_manifest("held", {"image": "x", "command": command},
                                nodeSelector={"kubernetes.io/hostname": node})  # fmt: skip
        await asyncio.to_thread(apply, realkube, ns, manifest)
        await until(lambda p: (p or {}).get("spec", {}).get("nodeName") == node, "binding")
        await asyncio.sleep(1.5)
        pod = await held()
        assert pod is not None and not (pod.get("status") or {}).get("containerStatuses")
        node_agent.set_paused(False)  # paused, nothing ran; now it does
        await until(ready, "the pod to be Ready after unpausing")
    finally:
        if ns:  # while the agent runs, so its pod's deletion finishes and the namespace goes
            await asyncio.to_thread(
                kubectl, realkube, "delete", "namespace", ns, "--timeout=60s", ok=False
            )
        await node_agent.stop()
        await asyncio.to_thread(
            kubectl, realkube, "delete", "node", node, "--ignore-not-found", "--wait=false"
        )
    with pytest.raises(AgentError, match="cannot read the kubeconfig"):
        await NodeAgent(workdir / "missing.kubeconfig").start()
