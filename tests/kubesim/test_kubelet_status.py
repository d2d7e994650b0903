"""Pure status builders: phase, conditions and containerStatuses as a kubelet writes them."""

from __future__ import annotations

import pytest

from kubesim.kubelet import status as st
from kubesim.kubelet.status import ContainerView, PodView, pod_phase, pod_status, qos_class

T0, T1 = "2030-01-01T00:00:00Z", "2030-01-01T00:00:05Z"


def view(**changes: object) -> ContainerView:
    return ContainerView(name="nb", image="img", **changes)  # type: ignore[arg-type]


def crashed(code: int) -> dict[str, object]:
    return st.terminated(code, T0, T1)


@pytest.mark.parametrize(
    ("policy", "containers", "phase"),
    [
        ("Always", [view()], "Pending"),
        ("Always", [view(state=st.waiting("ErrImagePull"))], "Pending"),
        ("Always", [view(state=st.running(T0))], "Running"),
        ("Always", [view(state=st.running(T0)), view()], "Pending"),
        (
            "Always",
            [view(state=st.waiting("CrashLoopBackOff"), last_state=crashed(1))],
            "Running",
        ),
        ("Always", [view(state=crashed(0))], "Running"),
        ("Never", [view(state=crashed(0))], "Succeeded"),
        ("Never", [view(state=crashed(0)), view(state=crashed(2))], "Failed"),
        ("Never", [view(state=crashed(0)), view(state=st.running(T0))], "Running"),
        ("OnFailure", [view(state=crashed(0))], "Succeeded"),
        ("OnFailure", [view(state=crashed(1))], "Running"),
    ],
)
def test_phase_follows_the_kubelet(
    policy: str, containers: list[ContainerView], phase: str
) -> None:
    assert pod_phase(policy, containers) == phase


def test_unscheduled_pod_has_only_a_false_pod_scheduled_condition() -> None:
    status = pod_status(PodView(unschedulable="0/1 nodes are available."), {}, {}, T0)
    assert status == {
        "qosClass": "BestEffort",
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/1 nodes are available.",
                "lastProbeTime": None,
                "lastTransitionTime": T0,
            }
        ],
    }


def test_running_ready_pod_has_every_field_clients_validate() -> None:
    container = view(state=st.running(T0), ready=True, container_id="kubesim://1", image_id="i")
    pod = PodView(scheduled=True, pod_ip="127.0.0.2", host_ip="127.0.0.1", start_time=T0)
    pod.containers = [container]
    status = pod_status(pod, {}, {}, T1)
    assert status["phase"] == "Running"
    assert status["podIP"] == "127.0.0.2" and status["podIPs"] == [{"ip": "127.0.0.2"}]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    (entry,) = status["containerStatuses"]
    assert entry == {
        "name": "nb",
        "image": "img",
        "imageID": "i",
        "containerID": "kubesim://1",
        "ready": True,
        "restartCount": 0,
        "started": True,
        "state": {"running": {"startedAt": T0}},
        "lastState": {},
    }


def test_transition_time_only_moves_when_a_condition_changes() -> None:
    pod = PodView(scheduled=True, pod_ip="127.0.0.2")
    pod.containers = [view(state=st.running(T0))]
    first = pod_status(pod, {}, {}, T0)
    again = pod_status(pod, {}, first, T1)
    assert again["conditions"] == first["conditions"]
    pod.containers[0].ready = True
    ready = pod_status(pod, {}, first, T1)
    times = {c["type"]: c["lastTransitionTime"] for c in ready["conditions"]}
    assert times == {"Initialized": T0, "Ready": T1, "ContainersReady": T1, "PodScheduled": T0}
    unready = {c["type"]: c for c in first["conditions"]}["Ready"]
    assert unready["reason"] == "ContainersNotReady"
    assert unready["message"] == "containers with unready status: [nb]"


def test_terminated_reason_follows_exit_code_unless_oom() -> None:
    assert st.terminated(0, T0, T1)["terminated"]["reason"] == "Completed"
    assert st.terminated(1, T0, T1)["terminated"]["reason"] == "Error"
    oom = st.terminated(137, T0, T1, reason="OOMKilled")["terminated"]
    assert oom["reason"] == "OOMKilled" and oom["exitCode"] == 137


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ([{}], "BestEffort"),
        ([{"requests": {"cpu": "1"}}], "Burstable"),
        ([{"limits": {"cpu": "1", "memory": "1Gi"}}], "Guaranteed"),
        (
            [{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}],
            "Guaranteed",
        ),
        ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {}], "Burstable"),
    ],
)
def test_qos_class(resources: list[dict[str, object]], qos: str) -> None:
    spec = {"containers": [{"name": str(i), "resources": r} for i, r in enumerate(resources)]}
    assert qos_class(spec) == qos


def test_deleted_pod_whose_containers_ended_is_terminal() -> None:
    pod = PodView(scheduled=True, pod_ip="127.0.0.2", stopped_for_deletion=True)
    pod.containers = [view(state=st.terminated(143, T0, T1))]
    assert pod_status(pod, {}, {}, T1)["phase"] == "Failed"
    pod.containers = [view(state=st.terminated(0, T0, T1))]
    assert pod_status(pod, {}, {}, T1)["phase"] == "Succeeded"
