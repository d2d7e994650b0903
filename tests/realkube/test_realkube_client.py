"""podgate's own client path (connect_kube, KubeApi) against the real API server.

Pods stay Pending: the scheduler is real but no node exists yet. Admission
(PodSecurity) and RBAC answers come from the real plugins, translated by
control/k8s into podgate's errors.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from realkube_kit import RealKube

from control.errors import Forbidden, NotFound
from control.k8s.api import KubeApi
from control.k8s.connect import connect_kube
from control.kube import WatchEvent

DEADLINE = 60.0
RBAC = "rbac.authorization.k8s.io/v1"


@pytest.fixture
async def kube(realkube: RealKube) -> AsyncIterator[KubeApi]:
    api = await connect_kube(kubeconfig=str(realkube.kubeconfig))
    try:
        yield api
    finally:
        await api.close()


async def new_namespace(kube: KubeApi, labels: dict[str, str] | None = None) -> str:
    """A fresh namespace, once the controller-manager gave it its default ServiceAccount.

    Until then the ServiceAccount admission plugin refuses every pod in it (403).
    """
    name = f"t-{uuid.uuid4().hex[:8]}"
    await kube.create("namespaces", "", {"metadata": {"name": name, "labels": labels or {}}})

    async def default_account() -> None:
        while True:
            try:
                await kube.get("serviceaccounts", name, "default")
                return
            except NotFound:
                await asyncio.sleep(0.2)

    await asyncio.wait_for(default_account(), DEADLINE)
    return name


def pod(name: str, **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": "realkube-test"}},
        "spec": {"containers": [{"name": "main", "image": "podgate-test/none", **container}]},
    }


async def test_list_watch_and_create_a_pod(kube: KubeApi) -> None:
    ns = await new_namespace(kube)
    listed = await kube.list("pods", ns, label_selector="app=realkube-test")
    assert listed.items == [] and listed.resource_version

    async def first_added() -> WatchEvent:
        async for event in kube.watch(
            "pods", ns, resource_version=listed.resource_version,
            label_selector="app=realkube-test", timeout_seconds=30,
        ):  # fmt: skip
            if event.type == "ADDED":
                return event
        raise AssertionError("the watch ended without an ADDED event")

    watching = asyncio.create_task(first_added())
    try:
        created = await kube.create("pods", ns, pod("one"))
        event = await asyncio.wait_for(watching, DEADLINE)
    finally:
        watching.cancel()
    assert created["status"]["phase"] == "Pending"
    assert event.object["metadata"]["uid"] == created["metadata"]["uid"]

    # The real scheduler finds no node: PodScheduled False, Unschedulable.
    async def unschedulable() -> dict[str, Any]:
        while True:
            got = await kube.get("pods", ns, "one")
            for condition in got["status"].get("conditions", []):
                if condition["type"] == "PodScheduled" and condition["status"] == "False":
                    return condition
            await asyncio.sleep(0.5)

    condition = await asyncio.wait_for(unschedulable(), DEADLINE)
    assert condition["reason"] == "Unschedulable"
    assert (await kube.get("pods", ns, "one"))["status"]["phase"] == "Pending"


async def test_token_request_gives_a_working_serviceaccount_token(
    kube: KubeApi, realkube: RealKube
) -> None:
    ns = await new_namespace(kube)
    await kube.create("serviceaccounts", ns, {"metadata": {"name": "podgate"}})
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"expirationSeconds": 600}}  # fmt: skip
    answer = await kube.create("serviceaccounts", ns, request, name="podgate", subresource="token")
    token = answer["status"]["token"]
    as_sa = await connect_kube(kubeconfig=_kubeconfig_with_token(realkube, token))
    try:
        # Authenticated (403, not 401) but not yet allowed.
        with pytest.raises(Forbidden) as refused:
            await as_sa.list("pods", ns)
        assert refused.value.status == 403
        assert f"system:serviceaccount:{ns}:podgate" in refused.value.message
        await kube.create(f"{RBAC}/roles", ns, {
            "metadata": {"name": "pods"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        })  # fmt: skip
        await kube.create(f"{RBAC}/rolebindings", ns, {
            "metadata": {"name": "pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods"},
            "subjects": [{"kind": "ServiceAccount", "name": "podgate", "namespace": ns}],
        })  # fmt: skip

        async def allowed() -> None:
            while True:
                try:
                    await as_sa.list("pods", ns)
                    return
                except Forbidden:
                    await asyncio.sleep(0.5)

        await asyncio.wait_for(allowed(), DEADLINE)
        with pytest.raises(Forbidden):
            await as_sa.list("secrets", ns)
    finally:
        await as_sa.close()


def _kubeconfig_with_token(realkube: RealKube, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "real", "cluster": {
            "server": realkube.url, "certificate-authority": str(realkube.ca_file)}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "real", "user": "sa"}}],
    }  # fmt: skip


RESTRICTED_CONTAINER: dict[str, Any] = {
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
}


async def test_pod_security_restricted_rejects_a_privileged_pod(kube: KubeApi) -> None:
    ns = await new_namespace(kube, {"pod-security.kubernetes.io/enforce": "restricted"})
    with pytest.raises(Forbidden) as refused:
        await kube.create("pods", ns, pod("root", securityContext={"privileged": True}))
    assert "violates PodSecurity" in refused.value.message
    assert "privileged" in refused.value.message
    # The same namespace admits a pod that meets the profile.
    admitted = await kube.create("pods", ns, pod("fine", **RESTRICTED_CONTAINER))
    assert admitted["metadata"]["name"] == "fine"
