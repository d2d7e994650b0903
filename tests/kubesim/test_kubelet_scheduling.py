"""Pure placement rules: quantities, node capacity, loopback addresses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as strat

from kubesim.kubelet.addresses import AddressPool
from kubesim.kubelet.quantities import (
    InvalidQuantity,
    cpu_millicores,
    format_cpu,
    format_memory,
    memory_bytes,
)
from kubesim.kubelet.scheduler import NodeCapacity, Requests, Scheduler, Unschedulable, pod_requests


@pytest.mark.parametrize(
    ("text", "millicores"),
    [("500m", 500), ("1", 1000), ("0.1", 100), ("2.5", 2500), (2, 2000), ("1500u", 2)],
)
def test_cpu_quantities(text: str | int, millicores: int) -> None:
    assert cpu_millicores(text) == millicores


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [("1Gi", 2**30), ("512Mi", 512 * 2**20), ("1k", 1000), ("1M", 10**6), ("128", 128)],
)
def test_memory_quantities(text: str, nbytes: int) -> None:
    assert memory_bytes(text) == nbytes


@pytest.mark.parametrize("bad", ["", "abc", "1Gb", "-1", "1..2"])
def test_invalid_quantities_are_refused(bad: str) -> None:
    with pytest.raises(InvalidQuantity):
        memory_bytes(bad)


def test_usage_formats_like_metrics_server() -> None:
    assert format_cpu(12) == "12m"
    assert format_memory(34 * 1024 * 1024) == "34816Ki"


def test_requests_sum_containers_and_default_to_limits() -> None:
    spec = {
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "512Mi"}}},
            {"name": "c"},
        ]
    }
    assert pod_requests(spec) == Requests(1250, 2**30 + 512 * 2**20)


def test_full_node_refuses_with_the_scheduler_message_and_frees_on_release() -> None:
    scheduler = Scheduler([NodeCapacity("n1", cpu_millicores=1000, memory_bytes=2**30, pods=2)])
    assert scheduler.place("a", Requests(600, 0), {}) == "n1"
    with pytest.raises(Unschedulable) as refused:
        scheduler.place("b", Requests(600, 2 * 2**30), {})
    assert str(refused.value) == (
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."
    )
    assert scheduler.release("a") is True
    assert scheduler.release("a") is False
    assert scheduler.place("b", Requests(600, 0), {}) == "n1"


def test_pod_count_and_node_selector() -> None:
    scheduler = Scheduler(
        [NodeCapacity("gpu", pods=1, labels={"gpu": "yes"}), NodeCapacity("plain", pods=5)]
    )
    assert scheduler.place("a", Requests(), {"gpu": "yes"}) == "gpu"
    with pytest.raises(Unschedulable) as refused:
        scheduler.place("b", Requests(), {"gpu": "yes"})
    assert "1 Too many pods" in str(refused.value)
    assert "1 node(s) didn't match Pod's node affinity/selector" in str(refused.value)
    assert scheduler.place("c", Requests(), {"kubernetes.io/hostname": "plain"}) == "plain"


def test_placing_twice_keeps_one_reservation() -> None:
    scheduler = Scheduler([NodeCapacity("n1", pods=1)])
    assert scheduler.place("a", Requests(), {}) == "n1"
    assert scheduler.place("a", Requests(), {}) == "n1"


def test_addresses_are_unique_skip_reserved_and_are_reused() -> None:
    pool = AddressPool()
    given_out = [pool.allocate() for _ in range(600)]
    assert len(set(given_out)) == 600
    assert given_out[0] == "127.0.0.2"
    assert "127.0.0.1" not in given_out and "127.0.1.1" not in given_out
    assert not any(a.endswith((".0", ".255")) for a in given_out)
    pool.release("127.0.0.9")
    pool.release("127.0.0.5")
    assert pool.allocate() == "127.0.0.5"
    assert pool.allocate() == "127.0.0.9"
    assert pool.in_use() == 600


@given(strat.lists(strat.booleans(), max_size=200))
def test_addresses_never_collide(steps: list[bool]) -> None:
    pool = AddressPool()
    held: list[str] = []
    for allocate in steps:
        if allocate or not held:
            address = pool.allocate()
            assert address not in held
            held.append(address)
        else:
            pool.release(held.pop(0))
    assert pool.in_use() == len(held)
