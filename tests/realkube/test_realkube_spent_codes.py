"""One OAuth code, spent once across replicas, on the real API server.

kubesim ignores a resourceVersion in a merge patch; kube-apiserver honours
it. Here two SpentCodes (two replicas' views of the user's record) spend
the same code at the same moment: exactly one wins, the other reads the
record again and sees the nonce. A sign-in writing the same record
meanwhile (UserRecordStore, no precondition) neither loses the nonce nor
makes a good spend fail. Everything runs as a service account holding
exactly deploy/'s Role, so no call outside it can hide here.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from realkube_kit import RealKube

from control import names
from control.errors import Forbidden
from control.k8s.api import KubeApi
from control.k8s.connect import connect_kube
from control.oauth_codes import SPENT_KEY, SpentCodes
from control.record_store import UserRecordStore

NOW = 1_800_000_000.0


ROLE = Path(__file__).resolve().parents[2] / "deploy" / "base" / "role.yaml"
RBAC = "rbac.authorization.k8s.io/v1"
DEADLINE = 60.0


@pytest.fixture
async def admin(realkube: RealKube) -> AsyncIterator[KubeApi]:
    api = await connect_kube(kubeconfig=str(realkube.kubeconfig))
    try:
        yield api
    finally:
        await api.close()


@pytest.fixture
async def podgate_ns(admin: KubeApi, realkube: RealKube) -> AsyncIterator[tuple[KubeApi, str]]:
    """A fresh namespace and a client holding exactly deploy/'s Role there, as podgate does."""
    ns = f"t-{uuid.uuid4().hex[:8]}"
    await admin.create("namespaces", "", {"metadata": {"name": ns}})
    await admin.create("serviceaccounts", ns, {"metadata": {"name": "podgate"}})
    role = yaml.safe_load(ROLE.read_text())
    await admin.create(
        f"{RBAC}/roles", ns, {"metadata": {"name": "podgate"}, "rules": role["rules"]}
    )
    await admin.create(f"{RBAC}/rolebindings", ns, {
        "metadata": {"name": "podgate"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "podgate"},
        "subjects": [{"kind": "ServiceAccount", "name": "podgate", "namespace": ns}],
    })  # fmt: skip
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"expirationSeconds": 600}}  # fmt: skip
    answer = await admin.create("serviceaccounts", ns, request, name="podgate", subresource="token")
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "real", "cluster": {
            "server": realkube.url, "certificate-authority": str(realkube.ca_file)}}],
        "users": [{"name": "sa", "user": {"token": answer["status"]["token"]}}],
        "contexts": [{"name": "sa", "context": {"cluster": "real", "user": "sa"}}],
    }  # fmt: skip
    api = await connect_kube(kubeconfig=config)
    try:

        async def bound() -> None:  # RBAC caches catch up within a moment
            while True:
                try:
                    await api.list("configmaps", ns)
                    return
                except Forbidden:
                    await asyncio.sleep(0.3)

        await asyncio.wait_for(bound(), DEADLINE)
        yield api, ns
    finally:
        await api.close()


async def replicas(kube: KubeApi, ns: str, user: str) -> tuple[SpentCodes, SpentCodes]:
    """Two replicas' views, both fed the same (soon stale) record, as their watches would."""
    first, second = SpentCodes(kube, ns), SpentCodes(kube, ns)
    record = await record_of(kube, ns, user)
    for view in (first, second):
        view.observe("ADDED", record, None)
    return first, second


async def record_of(kube: KubeApi, ns: str, user: str) -> dict[str, Any]:
    """The user's record, read as podgate can: a list by name (its Role has no get)."""
    found = await kube.list(
        "configmaps", ns, field_selector=f"metadata.name={names.record_name(user)}"
    )
    assert len(found.items) == 1, found.items
    return found.items[0]


async def test_two_replicas_spending_one_code_at_once_one_wins(
    podgate_ns: tuple[KubeApi, str],
) -> None:
    kube, ns = podgate_ns
    await UserRecordStore(kube, ns).signed_in("ada")
    for round_ in range(5):
        first, second = await replicas(kube, ns, "ada")
        nonce = f"nonce-{round_}"
        won = await asyncio.gather(
            first.spend("ada", nonce, NOW + 120, NOW), second.spend("ada", nonce, NOW + 120, NOW)
        )
        assert sorted(won) == [False, True], won
    record = await record_of(kube, ns, "ada")
    assert set(json.loads(record["data"][SPENT_KEY])) == {f"nonce-{i}" for i in range(5)}


async def test_without_a_record_one_replica_creates_it_and_the_other_loses(
    podgate_ns: tuple[KubeApi, str],
) -> None:
    kube, ns = podgate_ns
    first, second = SpentCodes(kube, ns), SpentCodes(kube, ns)
    won = await asyncio.gather(
        first.spend("bob", "n", NOW + 120, NOW), second.spend("bob", "n", NOW + 120, NOW)
    )
    assert sorted(won) == [False, True], won


async def test_a_sign_in_meanwhile_keeps_the_nonce_and_the_spend(
    podgate_ns: tuple[KubeApi, str],
) -> None:
    kube, ns = podgate_ns
    store = UserRecordStore(kube, ns)
    await store.signed_in("cyd")
    first, _ = await replicas(kube, ns, "cyd")
    # The record changes after this replica last saw it: its precondition is stale.
    await store.signed_in("cyd")
    assert await first.spend("cyd", "n1", NOW + 120, NOW) is True
    await store.sign_out_everywhere("cyd")
    record = await record_of(kube, ns, "cyd")
    assert "n1" in json.loads(record["data"][SPENT_KEY])
    # Expired nonces are dropped at the next write; the fresh one stays.
    assert await first.spend("cyd", "n2", NOW + 400, NOW + 300) is True
    record = await record_of(kube, ns, "cyd")
    assert set(json.loads(record["data"][SPENT_KEY])) == {"n2"}
