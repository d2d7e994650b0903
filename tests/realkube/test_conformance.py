"""kubesim against the real kube-apiserver: one scripted sequence, compared field by field.

The script (conformance_script) runs against an in-process kubesim and the
session's real control plane, in a namespace of the same name on each, and
every answer is compared (conformance_compare): status codes, Status reason,
message and details (name, kind, group, causes), objects with their
defaults, lists, and watch events in order. Where they disagree kubesim is
wrong; the few allowed differences are listed, with reasons, in
conformance_compare.ALLOWED and tests/realkube/README.md.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conformance_client import Answer, RawApi
from conformance_compare import ALLOWED, UNCOMPARED, differences
from conformance_script import Server, run_script
from realkube_kit import RealKube

from kubesim.cluster import SimCluster

BUDGET_SECONDS = 60.0


@pytest.fixture
async def sim_cluster() -> AsyncIterator[SimCluster]:
    cluster = SimCluster(kubelet=None)
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.stop()


@pytest.fixture
def namespace() -> str:
    return f"conformance-{uuid.uuid4().hex[:6]}"


async def _play(server_name: str, api: RawApi, compact: Any, makes_accounts: bool,
                ns: str) -> list[Answer]:  # fmt: skip
    try:
        return await run_script(Server(server_name, api, compact, makes_accounts), ns)
    finally:
        await api.close()


async def both(sim_cluster: SimCluster, realkube: RealKube, ns: str) -> tuple[list[Answer], ...]:
    sim_api = RawApi(sim_cluster.url, sim_cluster.token, None)
    real_api = RawApi(realkube.url, realkube.token, realkube.ca_file)

    async def compact_sim() -> None:
        answer = await sim_api.call("", "POST", "/kubesim/faults", body={"compact": True})
        assert answer.code == 200, answer.body

    async def compact_real() -> None:
        await asyncio.to_thread(realkube.compact)

    sim, real = await asyncio.gather(
        _play("kubesim", sim_api, compact_sim, False, ns),
        _play("real", real_api, compact_real, True, ns),
    )
    return sim, real


async def test_kubesim_answers_as_the_real_api_server(
    sim_cluster: SimCluster, realkube: RealKube, namespace: str
) -> None:
    started = time.monotonic()
    sim, real = await both(sim_cluster, realkube, namespace)
    elapsed = time.monotonic() - started
    found = differences(sim, real)
    assert not found, "kubesim differs from the real API server:\n" + "\n".join(found)
    assert elapsed < BUDGET_SECONDS, f"the script took {elapsed:.1f}s"
    # The script reached every part: a few answers that only a full run gives.
    codes = {a.step: a.code for a in real}
    assert codes["pod: create again"] == 409
    assert codes["apply: another manager, other value, conflicts"] == 409
    assert codes["apply: force takes the field"] == 200
    assert codes["invalid: no containers"] == 422
    assert codes["delete: gone"] == 404
    _compaction_on_each_side(sim, real)


def _compaction_on_each_side(sim: list[Answer], real: list[Answer]) -> None:
    """The uncompared steps: kubesim answers 410 Expired; the real server, either.

    The real apiserver's watch cache serves a compacted version for as long as
    it still holds it: in a fresh control plane, always; after the rest of the
    suite has filled the cache with pod changes, it has dropped them and
    answers 410 Expired, as kubesim does.
    """
    sim_by, real_by = {a.step: a for a in sim}, {a.step: a for a in real}
    token = sim_by["list: continue after compaction"]
    assert (token.code, token.body["reason"]) == (410, "Expired"), token.body
    assert real_by["list: continue after compaction"].code == 200
    for step in ("watch: from a compacted resourceVersion", "watch: from resourceVersion 1"):
        (event,) = sim_by[step].body
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
        assert event["object"]["message"].startswith("too old resource version: ")
        real_events = real_by[step].body
        if [e["type"] for e in real_events] == ["ERROR"]:
            (gone,) = real_events
            assert (gone["object"]["code"], gone["object"]["reason"]) == (410, "Expired")
            assert gone["object"]["message"].startswith("too old resource version: ")
        else:
            assert [e["type"] for e in real_events] == ["ADDED", "MODIFIED", "DELETED"]


def test_every_allowed_difference_has_its_reason() -> None:
    assert ALLOWED and all(len(reason) > 40 for reason in ALLOWED)
    assert UNCOMPARED and all(len(reason) > 40 for reason in UNCOMPARED.values())


def test_the_comparison_catches_a_difference() -> None:
    """A server that left out one default would fail the test, not pass it."""
    real = [Answer("pod: create", 201, {"kind": "Pod", "spec": {"dnsPolicy": "ClusterFirst"}})]
    sim = [Answer("pod: create", 201, {"kind": "Pod", "spec": {}})]
    assert differences(sim, real) == [
        'pod: create: spec.dnsPolicy: kubesim lacks it, real "ClusterFirst"'
    ]
    assert differences([Answer("pod: create", 200, real[0].body)], real) == [
        "pod: create: code: kubesim 200, real 201"
    ]
