"""One OAuth code, spent once across replicas, on the real API server.

kubesim ignores a resourceVersion in a merge patch; kube-apiserver honours
it. Here two SpentCodes (two replicas' views of the user's record) spend
the same code at the same moment: exactly one wins, the other reads the
record again and sees the nonce. A sign-in writing the same record
meanwhile (UserRecordStore, no precondition) neither loses the nonce nor
makes a good spend fail.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
from realkube_kit import RealKube

from control import names
from control.k8s.api import KubeApi
from control.k8s.connect import connect_kube
from control.oauth_codes import SPENT_KEY, SpentCodes
from control.record_store import UserRecordStore

NOW = 1_800_000_000.0


@pytest.fixture
async def kube(realkube: RealKube) -> AsyncIterator[KubeApi]:
    api = await connect_kube(kubeconfig=str(realkube.kubeconfig))
    try:
        yield api
    finally:
        await api.close()


async def namespace(kube: KubeApi) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    await kube.create("namespaces", "", {"metadata": {"name": name}})
    return name


async def replicas(kube: KubeApi, ns: str, user: str) -> tuple[SpentCodes, SpentCodes]:
    """Two replicas' views, both fed the same (soon stale) record, as their watches would."""
    first, second = SpentCodes(kube, ns), SpentCodes(kube, ns)
    record = await kube.get("configmaps", ns, names.record_name(user))
    for view in (first, second):
        view.observe("ADDED", record, None)
    return first, second


async def test_two_replicas_spending_one_code_at_once_one_wins(kube: KubeApi) -> None:
    ns = await namespace(kube)
    await UserRecordStore(kube, ns).signed_in("ada")
    for round_ in range(5):
        first, second = await replicas(kube, ns, "ada")
        nonce = f"nonce-{round_}"
        won = await asyncio.gather(
            first.spend("ada", nonce, NOW + 120, NOW), second.spend("ada", nonce, NOW + 120, NOW)
        )
        assert sorted(won) == [False, True], won
    record = await kube.get("configmaps", ns, names.record_name("ada"))
    assert set(json.loads(record["data"][SPENT_KEY])) == {f"nonce-{i}" for i in range(5)}


async def test_without_a_record_one_replica_creates_it_and_the_other_loses(
    kube: KubeApi,
) -> None:
    ns = await namespace(kube)
    first, second = SpentCodes(kube, ns), SpentCodes(kube, ns)
    won = await asyncio.gather(
        first.spend("bob", "n", NOW + 120, NOW), second.spend("bob", "n", NOW + 120, NOW)
    )
    assert sorted(won) == [False, True], won


async def test_a_sign_in_meanwhile_keeps_the_nonce_and_the_spend(kube: KubeApi) -> None:
    ns = await namespace(kube)
    store = UserRecordStore(kube, ns)
    await store.signed_in("cyd")
    first, _ = await replicas(kube, ns, "cyd")
    # The record changes after this replica last saw it: its precondition is stale.
    await store.signed_in("cyd")
    assert await first.spend("cyd", "n1", NOW + 120, NOW) is True
    await store.sign_out_everywhere("cyd")
    record = await kube.get("configmaps", ns, names.record_name("cyd"))
    assert "n1" in json.loads(record["data"][SPENT_KEY])
    # Expired nonces are dropped at the next write; the fresh one stays.
    assert await first.spend("cyd", "n2", NOW + 400, NOW + 300) is True
    record = await kube.get("configmaps", ns, names.record_name("cyd"))
    assert set(json.loads(record["data"][SPENT_KEY])) == {"n2"}
