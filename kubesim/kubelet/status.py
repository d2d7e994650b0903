"""Pure builders for pod status exactly as a real kubelet reports it.

Phase, conditions (PodScheduled, Initialized, ContainersReady, Ready) and
containerStatuses with waiting/running/terminated states. Never does I/O.
Every containerStatuses entry carries name, image, imageID, ready and
restartCount, and every condition type and status, because
kubernetes_asyncio rejects watch objects without them.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


def rfc3339(moment: datetime.datetime | None = None) -> str:
    """A Kubernetes timestamp: UTC, seconds, trailing Z."""
    moment = moment or datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(moment: datetime.datetime | None = None) -> str:
    """A MicroTime (Event.eventTime): UTC with microseconds."""
    moment = moment or datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def waiting(reason: str, message: str | None = None) -> Obj:
    state: Obj = {"reason": reason}
    if message:
        state["message"] = message
    return {"waiting": state}


def running(started_at: str) -> Obj:
    return {"running": {"startedAt": started_at}}


def terminated(
    exit_code: int,
    started_at: str | None,
    finished_at: str,
    container_id: str | None = None,
    reason: str | None = None,
    signal: int | None = None,
) -> Obj:
    """A terminated state; the reason follows the exit code unless given (OOMKilled)."""
    state: Obj = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": started_at,
        "finishedAt": finished_at,
    }
    if signal is not None:
        state["signal"] = signal
    if container_id:
        state["containerID"] = container_id
    return {"terminated": state}


@dataclass
class ContainerView:
    """What the kubelet knows about one container, in status terms."""

    name: str
    image: str
    state: Obj = field(default_factory=lambda: waiting("ContainerCreating"))
    last_state: Obj = field(default_factory=dict)
    ready: bool = False
    restart_count: int = 0
    container_id: str | None = None
    image_id: str = ""

    @property
    def started(self) -> bool:
        return "running" in self.state


def container_status(view: ContainerView) -> Obj:
    status: Obj = {
        "name": view.name,
        "image": view.image,
        "imageID": view.image_id,
        "ready": view.ready,
        "restartCount": view.restart_count,
        "started": view.started,
        "state": view.state,
        "lastState": view.last_state,
    }
    if view.container_id:
        status["containerID"] = view.container_id
    return status


def pod_phase(restart_policy: str, containers: Sequence[ContainerView]) -> str:
    """The phase from the containers' states, following the kubelet's getPhase."""
    running_count = stopped = succeeded = waiting_count = 0
    for view in containers:
        if "running" in view.state:
            running_count += 1
        elif "terminated" in view.state:
            stopped += 1
            succeeded += view.state["terminated"]["exitCode"] == 0
        elif view.last_state.get("terminated"):
            stopped += 1  # waiting to restart after having run
        else:
            waiting_count += 1
    if waiting_count:
        return "Pending"  # a container has never started yet
    if running_count:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def qos_class(spec: Mapping[str, Any]) -> str:
    """Guaranteed, Burstable or BestEffort from the containers' requests and limits."""
    containers = spec.get("containers") or []
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        any_set = any_set or bool(limits) or bool(requests)
        for resource in ("cpu", "memory"):
            if (
                resource not in limits
                or requests.get(resource, limits[resource]) != limits[resource]
            ):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


@dataclass
class PodView:
    """What the kubelet knows about one pod, in status terms."""

    restart_policy: str = "Always"
    scheduled: bool = False
    unschedulable: str | None = None
    pod_ip: str | None = None
    host_ip: str | None = None
    start_time: str | None = None
    containers: list[ContainerView] = field(default_factory=list)
    stopped_for_deletion: bool = False


def pod_status(
    view: PodView, spec: Mapping[str, Any], previous: Mapping[str, Any], now: str
) -> Obj:
    """The whole .status; lastTransitionTime only moves when a condition changes."""
    status: Obj = {"qosClass": qos_class(spec)}
    if not view.scheduled:
        status["phase"] = "Pending"
        if view.unschedulable:
            status["conditions"] = _conditions(
                [("PodScheduled", False, "Unschedulable", view.unschedulable)], previous, now
            )
        return status
    phase = pod_phase(view.restart_policy, view.containers)
    if view.stopped_for_deletion:
        # Since Kubernetes 1.27 a deleted pod whose containers all ended is terminal.
        codes = [c.state.get("terminated", {}).get("exitCode") for c in view.containers]
        if all(code is not None for code in codes):
            phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"
    status["phase"] = phase
    unready = [c.name for c in view.containers if not c.ready]
    if phase in ("Succeeded", "Failed"):
        ready_reason, ready_message = "PodCompleted", None
    elif unready:
        ready_reason = "ContainersNotReady"
        ready_message = f"containers with unready status: [{' '.join(unready)}]"
    else:
        ready_reason = ready_message = None
    ready = not unready and phase == "Running"
    status["conditions"] = _conditions(
        [
            ("Initialized", True, None, None),
            ("Ready", ready, ready_reason, ready_message),
            ("ContainersReady", ready, ready_reason, ready_message),
            ("PodScheduled", True, None, None),
        ],
        previous,
        now,
    )
    if view.host_ip:
        status["hostIP"] = view.host_ip
        status["hostIPs"] = [{"ip": view.host_ip}]
    if view.pod_ip:
        status["podIP"] = view.pod_ip
        status["podIPs"] = [{"ip": view.pod_ip}]
    if view.start_time:
        status["startTime"] = view.start_time
    status["containerStatuses"] = [container_status(c) for c in view.containers]
    return status


def _conditions(
    wanted: list[tuple[str, bool, str | None, str | None]],
    previous: Mapping[str, Any],
    now: str,
) -> list[Obj]:
    before = {c.get("type"): c for c in previous.get("conditions") or []}
    conditions = []
    for kind, ok, reason, message in wanted:
        value = "True" if ok else "False"
        earlier = before.get(kind)
        since = earlier["lastTransitionTime"] if earlier and earlier["status"] == value else now
        condition: Obj = {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": since,
        }
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        conditions.append(condition)
    return conditions
