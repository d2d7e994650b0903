"""kubectl against the real control plane: discovery, namespaces, RBAC, the controllers.

Each test names its own namespace: the control plane is shared by the session.
What the controllers do (a namespace's default ServiceAccount, garbage
collection, namespace deletion) happens asynchronously, so those tests poll for
the state they assert, with a deadline.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable

from realkube_kit import HERE, RealKube, run_kubectl

DEADLINE = 60.0


def pinned_version() -> str:
    text = (HERE / "go.mod").read_text()
    match = re.search(r"^\s*k8s\.io/kubernetes (v\d+\.\d+\.\d+)$", text, re.MULTILINE)
    assert match, "go.mod pins no k8s.io/kubernetes version"
    return match.group(1)


def kubectl(kube: RealKube, *args: str, stdin: str = "", ok: bool = True) -> tuple[int, str]:
    return run_kubectl(kube.kubeconfig, *args, stdin=stdin, ok=ok)


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {DEADLINE:.0f}s: {what}")


def namespace(kube: RealKube) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl(kube, "create", "namespace", name)
    return name


def test_server_is_the_pinned_release(realkube: RealKube) -> None:
    _, out = kubectl(realkube, "version", "-o", "json")
    assert json.loads(out[: out.rindex("}") + 1])["serverVersion"]["gitVersion"] == (
        pinned_version()
    )


def test_system_namespaces_and_no_nodes(realkube: RealKube) -> None:
    _, out = kubectl(realkube, "get", "namespaces", "-o", "name")
    names = set(out.split())
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public",
            "namespace/kube-node-lease"} <= names, out  # fmt: skip
    _, out = kubectl(realkube, "get", "nodes", "-o", "json")
    assert json.loads(out)["items"] == []  # no kubelet yet: nothing registers a node


def test_a_new_namespace_gets_its_serviceaccount_and_root_ca(realkube: RealKube) -> None:
    ns = namespace(realkube)
    # The ServiceAccount controller and the root-CA publisher of the real
    # controller-manager fill every new namespace.
    eventually(
        lambda: kubectl(realkube, "get", "serviceaccount", "default", "-n", ns, ok=False)[0] == 0,
        "the default ServiceAccount",
    )
    _, out = kubectl(realkube, "get", "configmap", "kube-root-ca.crt", "-n", ns, "-o", "json")
    ca = json.loads(out)["data"]["ca.crt"]
    assert ca.strip() == realkube.ca_file.read_text().strip()


def test_auth_can_i_follows_rbac(realkube: RealKube) -> None:
    ns = namespace(realkube)
    assert kubectl(realkube, "auth", "can-i", "create", "pods", "-n", ns)[1].strip() == "yes"
    sa = f"system:serviceaccount:{ns}:default"
    code, out = kubectl(realkube, "auth", "can-i", "list", "secrets", "-n", ns, "--as", sa,
                        ok=False)  # fmt: skip
    assert (code, out.strip()) == (1, "no")
    kubectl(realkube, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods",
            "-n", ns)  # fmt: skip
    kubectl(realkube, "create", "rolebinding", "pod-reader", "--role=pod-reader",
            f"--serviceaccount={ns}:default", "-n", ns)  # fmt: skip
    eventually(
        lambda: kubectl(realkube, "auth", "can-i", "list", "pods", "-n", ns, "--as", sa,
                        ok=False)[1].strip() == "yes",
        "the RoleBinding to take effect",
    )  # fmt: skip
    code, out = kubectl(realkube, "auth", "can-i", "list", "pods", "-n", "default", "--as", sa,
                        ok=False)  # fmt: skip
    assert (code, out.strip()) == (1, "no")  # a Role binds in its own namespace only


def test_garbage_collector_removes_dependents(realkube: RealKube) -> None:
    ns = namespace(realkube)
    kubectl(realkube, "create", "configmap", "owner", "-n", ns)
    _, out = kubectl(realkube, "get", "configmap", "owner", "-n", ns, "-o", "json")
    uid = json.loads(out)["metadata"]["uid"]
    dependent = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dependent", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]},
    }  # fmt: skip
    kubectl(realkube, "create", "-n", ns, "-f", "-", stdin=json.dumps(dependent))
    kubectl(realkube, "delete", "configmap", "owner", "-n", ns)
    eventually(
        lambda: kubectl(realkube, "get", "configmap", "dependent", "-n", ns, ok=False)[0] != 0,
        "the garbage collector to delete the dependent",
    )


def test_deleting_a_namespace_finishes(realkube: RealKube) -> None:
    ns = namespace(realkube)
    kubectl(realkube, "create", "configmap", "data", "-n", ns)
    kubectl(realkube, "delete", "namespace", ns, "--wait=false")
    # The namespace controller empties it, then removes its finalizer.
    eventually(
        lambda: kubectl(realkube, "get", "namespace", ns, ok=False)[0] != 0,
        "the namespace to be gone",
    )


def test_control_plane_stays_under_two_gib(realkube: RealKube) -> None:
    """After holding a few MiB of objects, the whole control plane peaked under 2 GiB."""
    ns = namespace(realkube)
    items = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"load-{i}"},
         "data": {"blob": "x" * 16384}}
        for i in range(200)
    ]  # fmt: skip
    kubectl(realkube, "create", "-n", ns, "-f", "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))  # fmt: skip
    _, out = kubectl(realkube, "get", "configmaps", "-n", ns, "-o", "name")
    assert len([line for line in out.split() if line.startswith("configmap/load-")]) == 200
    assert realkube.process.poll() is None
    assert realkube.peak_rss_bytes() < 2 * 1024**3
