"""The per-user records: their ConfigMap shape, the store every replica keeps, the session gate.

The store runs against kubesim through the real client and the real
informer; two stores on one namespace stand for two replicas.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from control.auth import UserAccess
from control.informer import Informer
from control.k8s import KubeApi
from control.names import USER_ANNOTATION, USER_LABEL, record_name
from control.record_store import UserRecordStore
from control.session_gate import SessionGate
from control.user_records import (
    CREATED,
    LAST_LOGIN,
    NOT_BEFORE,
    RECORD_SELECTOR,
    UserRecord,
    not_before_from,
    parse_record,
    record_manifest,
)

NAMESPACE = "podgate"


# -- the ConfigMap, without a cluster ---------------------------------------------------


def test_a_record_is_a_labelled_configmap_named_after_the_escaped_user() -> None:
    manifest = record_manifest("zoë.b", now=1000.7, not_before=1001)
    metadata = manifest["metadata"]
    assert manifest["kind"] == "ConfigMap"
    assert metadata["name"] == record_name("zoë.b") == "podgate-user-zo-c3-ab-2eb"
    assert metadata["annotations"] == {USER_ANNOTATION: "zoë.b"}
    labels = metadata["labels"]
    assert labels[USER_LABEL] and labels["app.kubernetes.io/component"] == "user-record"
    assert set(RECORD_SELECTOR.split(",")) <= {f"{k}={v}" for k, v in labels.items()}
    assert manifest["data"] == {CREATED: "1000", LAST_LOGIN: "1000", NOT_BEFORE: "1001"}
    assert parse_record(manifest) == UserRecord("zoë.b", 1001.0, 1000.0, 1000.0)
    # Long names stay within a DNS label and apart from each other.
    long_a, long_b = "a" * 64, "a" * 63 + "b"
    assert len(record_name(long_a)) <= 63 and record_name(long_a) != record_name(long_b)


def test_a_record_that_is_not_one_or_holds_nonsense_reads_safely() -> None:
    assert parse_record({"metadata": {"name": "podgate-config"}}) is None
    odd = {"metadata": {"annotations": {USER_ANNOTATION: "ada"}}, "data": {NOT_BEFORE: "soon"}}
    assert parse_record(odd) == UserRecord("ada")
    for nonsense in ("-5", "nan", "inf"):
        odd["data"] = {NOT_BEFORE: nonsense}
        assert parse_record(odd) == UserRecord("ada")


def test_a_sign_out_refuses_every_cookie_issued_in_its_second() -> None:
    # Cookies carry whole seconds: the sign-out's own second is refused whole.
    assert not_before_from(1000.2) == 1001.0
    assert not_before_from(1000.0) == 1000.0


# -- the gate ------------------------------------------------------------------------


class SignOuts:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def not_before(self, user: str) -> float:
        return self.at.get(user, 0.0)


def test_the_gate_applies_allowed_users_accounts_and_sign_outs() -> None:
    sign_outs = SignOuts()
    gate = SessionGate(UserAccess(), None, sign_outs)
    assert gate.admits("ada", 100.0)
    sign_outs.at["ada"] = 101.0
    assert not gate.admits("ada", 100.0) and gate.admits("ada", 101.0)
    assert gate.admits("bob", 0.0)
    gate.update(UserAccess(allowed_users=["bob"], admins=["root"]), None)
    assert not gate.admits("ada", 200.0)
    assert gate.admits("bob", 200.0) and gate.admits("root", 200.0)
    gate.update(UserAccess(), frozenset({"bob"}))  # password users: only those exist
    assert gate.admits("bob", 200.0) and not gate.admits("root", 200.0)


# -- the store against kubesim -------------------------------------------------------


@pytest.fixture
async def replicas(kube: KubeApi) -> AsyncIterator[tuple[UserRecordStore, UserRecordStore]]:
    """Two stores, each fed by its own informer on the records, as two replicas are."""
    informers = []
    stores = []
    for name in ("a", "b"):
        store = UserRecordStore(kube, NAMESPACE)
        informer = Informer(
            kube, "configmaps", NAMESPACE, label_selector=RECORD_SELECTOR, name=f"records-{name}"
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


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.02)


async def test_a_sign_out_at_one_replica_reaches_the_other(
    replicas: tuple[UserRecordStore, UserRecordStore],
) -> None:
    a, b = replicas
    await a.signed_in("ada")
    assert "ada" in a.users()  # applied from the API's answer, no watch needed
    await until(lambda: "ada" in b.users())
    assert b.not_before("ada") == 0.0
    before = time.time()
    not_before = await a.sign_out_everywhere("ada")
    assert before <= not_before <= time.time() + 1 and a.not_before("ada") == not_before
    await until(lambda: b.not_before("ada") == not_before)
    # Signing in again keeps the sign-out; a second sign-out never lowers it.
    await b.signed_in("ada")
    assert b.not_before("ada") == not_before
    assert await b.sign_out_everywhere("ada") >= not_before


async def test_a_sign_out_of_a_user_with_no_record_makes_one(
    replicas: tuple[UserRecordStore, UserRecordStore], kube: KubeApi
) -> None:
    a, b = replicas
    not_before = await b.sign_out_everywhere("bob")
    record = await kube.get("configmaps", NAMESPACE, record_name("bob"))
    assert record["data"][NOT_BEFORE] == str(int(not_before))
    assert LAST_LOGIN not in record["data"]
    await until(lambda: a.not_before("bob") == not_before)


async def test_removed_users_are_not_listed_but_stay_signed_out(
    replicas: tuple[UserRecordStore, UserRecordStore],
) -> None:
    a, b = replicas
    await a.created("cy")
    await until(lambda: "cy" in b.users())
    not_before = await a.sign_out_everywhere("cy", removed=True)
    assert "cy" not in a.users()
    await until(lambda: "cy" not in b.users())
    assert b.not_before("cy") == not_before
    await b.created("cy")  # made again: listed again, still signed out until then
    await until(lambda: "cy" in a.users())
    assert a.not_before("cy") == not_before


async def test_an_older_event_never_brings_a_signed_out_session_back(kube: KubeApi) -> None:
    store = UserRecordStore(kube, NAMESPACE)
    newer = record_manifest("dee", now=1000, not_before=2000)
    older = record_manifest("dee", now=1000, not_before=1500)
    store.observe("ADDED", newer, None)
    store.observe("MODIFIED", older, newer)
    assert store.not_before("dee") == 2000.0
    store.observe("DELETED", older, older)  # the record itself deleted by hand
    assert store.not_before("dee") == 0.0 and "dee" not in store.users()
