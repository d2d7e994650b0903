"""kubectl against kubesim: apply, get, describe, events, logs, top, delete.

kubectl sends a bearer token only over https, so these clusters serve TLS
with their own CA, written into the kubeconfig kubectl loads unchanged.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config

from kubesim.cluster import SimCluster

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")

POD_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: web
    image: python:3.11
    command: [python, -c, "import time; print('serving', flush=True); time.sleep(60)"]
"""


class Kubectl:
    def __init__(self, kubeconfig: Path, cache: Path) -> None:
        self.args = ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache)]

    async def __call__(self, *args: str, ok: bool = True) -> tuple[int, str, str]:
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "HOME": str(self.args[4])}
        process = await asyncio.create_subprocess_exec(
            *self.args, *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(process.communicate(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        code = process.returncode or 0
        if ok:
            assert code == 0, err.decode()
        return code, out.decode(), err.decode()


async def kubectl_for(cluster: SimCluster, tmp_path: Path) -> Kubectl:
    cluster.write_kubeconfig(tmp_path / "kubeconfig")
    (tmp_path / "pod.yaml").write_text(POD_YAML)
    return Kubectl(tmp_path / "kubeconfig", tmp_path / "cache")


async def test_kubectl_against_the_api_server_alone(make_cluster: Any, tmp_path: Path) -> None:
    cluster = await make_cluster(kubelet=None, tls=True)
    kubectl = await kubectl_for(cluster, tmp_path)
    _, out, _ = await kubectl("apply", "-f", str(tmp_path / "pod.yaml"))
    assert "pod/web created" in out
    _, out, _ = await kubectl("get", "pods")
    header, row = out.splitlines()
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert row.split()[:4] == ["web", "0/1", "Pending", "0"]
    async with await config.new_client_from_config(str(tmp_path / "kubeconfig")) as api:
        core = client.CoreV1Api(api)
        uid = (await core.read_namespaced_pod("web", "default")).metadata.uid
        # describe finds a pod's events by involvedObject name, namespace and uid.
        event = {
            "metadata": {"name": "web.1"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": uid},
            "reason": "FailedScheduling", "type": "Warning",
            "message": "0/1 nodes are available: 1 Insufficient cpu.",
        }  # fmt: skip
        await core.create_namespaced_event("default", event)
    _, out, _ = await kubectl("describe", "pod", "web")
    assert "Status:           Pending" in out
    assert "FailedScheduling" in out and "Insufficient cpu" in out
    _, out, _ = await kubectl("get", "events")
    assert "FailedScheduling" in out and "pod/web" in out
    _, out, _ = await kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.uid}")
    assert len(out) == 36
    _, out, _ = await kubectl("delete", "pod", "web")
    assert 'pod "web" deleted' in out
    code, _, err = await kubectl("get", "pod", "web", ok=False)
    assert code == 1 and "NotFound" in err


async def test_kubectl_errors_reach_the_user(make_cluster: Any, tmp_path: Path) -> None:
    cluster = await make_cluster(kubelet=None, tls=True)
    kubectl = await kubectl_for(cluster, tmp_path)
    (tmp_path / "bad.yaml").write_text(
        POD_YAML.replace("name: web\n  labels", "name: Web_1\n  labels")
    )
    code, _, err = await kubectl("apply", "-f", str(tmp_path / "bad.yaml"), ok=False)
    assert code == 1 and "is invalid" in err and "metadata.name" in err
    cluster.write_kubeconfig(tmp_path / "viewer", read_only=True)
    viewer = Kubectl(tmp_path / "viewer", tmp_path / "cache")
    code, _, err = await viewer("apply", "-f", str(tmp_path / "pod.yaml"), ok=False)
    assert code == 1 and "forbidden" in err


async def test_kubectl_with_the_simulated_kubelet(make_cluster: Any, tmp_path: Path) -> None:
    cluster = await make_cluster(tls=True)
    kubectl = await kubectl_for(cluster, tmp_path)
    await kubectl("apply", "-f", str(tmp_path / "pod.yaml"))
    await kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=20s")
    _, out, _ = await kubectl("get", "pods", "-o", "wide")
    assert out.splitlines()[1].split()[:3] == ["web", "1/1", "Running"]
    _, out, _ = await kubectl("describe", "pod", "web")
    assert "Started container web" in out
    _, out, _ = await kubectl("logs", "web")
    assert out.strip() == "serving"
    _, out, _ = await kubectl("top", "pod", "web")
    assert out.splitlines()[1].split()[0] == "web"
    _, out, _ = await kubectl("delete", "pod", "web", "--grace-period=1", "--timeout=20s")
    assert 'pod "web" deleted' in out


CONFIG_YAML = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: {mode}
"""


async def test_kubectl_server_side_apply(make_cluster: Any, tmp_path: Path) -> None:
    """kubectl apply --server-side: ownership per field manager, conflicts, force."""
    cluster = await make_cluster(kubelet=None, tls=True)
    kubectl = await kubectl_for(cluster, tmp_path)
    for mode in ("fast", "slow"):
        (tmp_path / f"{mode}.yaml").write_text(CONFIG_YAML.format(mode=mode))
    _, out, _ = await kubectl("apply", "--server-side", "-f", str(tmp_path / "fast.yaml"))
    assert "configmap/settings serverside-applied" in out
    code, _, err = await kubectl(
        "apply", "--server-side", "--field-manager=other", "-f", str(tmp_path / "slow.yaml"),
        ok=False,
    )  # fmt: skip
    assert code == 1
    assert 'conflict with "kubectl"' in err and ".data.mode" in err
    await kubectl(
        "apply", "--server-side", "--field-manager=other", "--force-conflicts",
        "-f", str(tmp_path / "slow.yaml"),
    )  # fmt: skip
    _, out, _ = await kubectl("get", "configmap", "settings", "-o", "jsonpath={.data.mode}")
    assert out == "slow"
    _, out, _ = await kubectl(
        "get", "configmap", "settings", "--show-managed-fields", "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    )  # fmt: skip
    assert out.split() == ["other"]  # forced: the field changed hands
