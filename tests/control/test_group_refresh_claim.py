"""Two replicas due to re-read one user's groups: only one claims the check.

Each replica's UserRecordStore is fed by its own informer, as in a real
deployment; both see the same record version, both try to claim the group
check on it, and the API server lets exactly one write through (the other
meets 409 Conflict). Runs on kubesim and on the real API server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from control.informer import Informer
from control.k8s import KubeApi
from control.record_store import UserRecordStore
from control.user_records import GROUPS_CHECKED, RECORD_SELECTOR, groups_data

pytestmark = pytest.mark.both_servers

NAMESPACE = "podgate"


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.02)


@pytest.fixture
async def replicas(kube: KubeApi) -> AsyncIterator[tuple[UserRecordStore, UserRecordStore]]:
    informers = []
    stores = []
    for name in ("a", "b"):
        store = UserRecordStore(kube, NAMESPACE)
        informer = Informer(
            kube, "configmaps", NAMESPACE, label_selector=RECORD_SELECTOR, name=f"claim-{name}"
        )
        informer.add_listener(store.observe)
        await informer.start()
        await asyncio.wait_for(informer.synced.wait(), 5)
        informers.append(informer)
        stores.append(store)
    try:
        yield stores[0], stores[1]
    finally:
        for informer in informers:
            await informer.stop()


async def test_one_replica_claims_a_group_check_the_other_steps_back(
    replicas: tuple[UserRecordStore, UserRecordStore],
) -> None:
    a, b = replicas
    await a.signed_in("ada", data=groups_data(frozenset({"lab"}), 1000.0, "sealed"))
    await until(lambda: b.groups("ada") == frozenset({"lab"}))
    now = str(int(time.time()))
    # Both saw the same version; both claim it at once.
    won = await asyncio.gather(
        a.claim("ada", {GROUPS_CHECKED: now}), b.claim("ada", {GROUPS_CHECKED: now})
    )
    assert sorted(won) == [False, True]
    # The loser's next look (after the watch event) sees the check already taken.
    loser = b if won[0] else a
    await until(lambda: loser.get("ada").groups_checked == float(now))
