"""Events as the kubelet and the scheduler record them, with aggregation."""

from __future__ import annotations

from kubesim.kubelet.events import SCHEDULER, EventRecorder
from kubesim.store import Store

POD = {"metadata": {"name": "jupyter-ada", "namespace": "default", "uid": "u-1"}}


def events(store: Store) -> list[dict]:  # type: ignore[type-arg]
    return store.list("events", "default")


def test_kubelet_event_shape() -> None:
    store = Store()
    EventRecorder(store).record(POD, "Started", "Started container nb", container="nb", host="n1")
    (event,) = events(store)
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "jupyter-ada",
        "namespace": "default",
        "uid": "u-1",
        "fieldPath": "spec.containers{nb}",
    }
    assert event["type"] == "Normal" and event["count"] == 1
    assert event["source"] == {"component": "kubelet", "host": "n1"}
    assert event["firstTimestamp"] and event["firstTimestamp"] == event["lastTimestamp"]
    assert event["eventTime"] is None
    assert event["metadata"]["name"].startswith("jupyter-ada.")


def test_scheduler_event_uses_event_time() -> None:
    store = Store()
    EventRecorder(store).record(
        POD, "FailedScheduling", "0/1 nodes are available.", warning=True, component=SCHEDULER
    )
    (event,) = events(store)
    assert event["type"] == "Warning"
    assert event["eventTime"] and event["firstTimestamp"] is None and event["lastTimestamp"] is None
    assert event["source"] == {"component": "default-scheduler"}


def test_repeats_are_counted_on_one_event_until_forgotten() -> None:
    store = Store()
    recorder = EventRecorder(store)
    for _ in range(3):
        recorder.record(POD, "BackOff", "Back-off restarting", warning=True, container="nb")
    recorder.record(POD, "BackOff", "a different message", warning=True, container="nb")
    counts = sorted((e["message"], e["count"]) for e in events(store))
    assert counts == [("Back-off restarting", 3), ("a different message", 1)]
    recorder.forget("default", "u-1")
    recorder.record(POD, "BackOff", "Back-off restarting", warning=True, container="nb")
    assert len(events(store)) == 3


def test_a_deleted_event_is_recreated_not_lost() -> None:
    store = Store()
    recorder = EventRecorder(store)
    recorder.record(POD, "Pulled", "pulled")
    (event,) = events(store)
    store.remove("events", "default", event["metadata"]["name"])
    recorder.record(POD, "Pulled", "pulled")
    assert [e["count"] for e in events(store)] == [1]
