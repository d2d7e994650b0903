"""Pure reading of a user pod and its Events: where it serves, why it failed, how far it got.

The spawner and the route sync decide on what these functions say, so the
rules live here once: a pod is served only when Ready with an address and
not being deleted; a start has failed for good when the image cannot be
pulled, the server keeps crashing or is out of memory, no node can hold it,
or it has exited. Messages are for the person waiting, not for an operator.
Plain dicts in, plain values out: never any I/O.
"""

from __future__ import annotations

from typing import Any

from control.errors import SpawnFailed
from control.kube import Object

_IMAGE_PULL = frozenset(
    ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
)
_CANNOT_CREATE = frozenset(("CreateContainerError", "CreateContainerConfigError"))


def _condition(pod: Object, kind: str) -> dict[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == kind:
            return condition
    return None


def is_deleting(pod: Object) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_ready(pod: Object) -> bool:
    """Ready condition True, an address, and not on its way out."""
    ready = _condition(pod, "Ready")
    return (
        ready is not None
        and ready.get("status") == "True"
        and bool((pod.get("status") or {}).get("podIP"))
        and not is_deleting(pod)
    )


def ready_target(pod: Object, port: int) -> str | None:
    """ "http://<podIP>:<port>" for a pod that may take traffic, else None."""
    if not is_ready(pod):
        return None
    ip = pod["status"]["podIP"]
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


def _image(pod: Object, status: dict[str, Any]) -> str:
    if status.get("image"):
        return str(status["image"])
    for container in (pod.get("spec") or {}).get("containers") or ():
        if container.get("name") == status.get("name"):
            return str(container.get("image", "?"))
    return "?"


def _container_failure(pod: Object, status: dict[str, Any]) -> SpawnFailed | None:
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated") or {}
    reason = waiting.get("reason")
    if reason in _IMAGE_PULL:
        return SpawnFailed("image_pull", f"the image {_image(pod, status)} cannot be pulled")
    if reason in _CANNOT_CREATE:
        detail = waiting.get("message") or reason
        return SpawnFailed("error", f"the server's container cannot be created: {detail}")
    if "OOMKilled" in (terminated.get("reason"), last.get("reason")):
        return SpawnFailed("out_of_memory", "the server ran out of memory and was stopped")
    restarts = int(status.get("restartCount") or 0)
    crashed = terminated if terminated.get("exitCode") else last
    if reason == "CrashLoopBackOff" or (restarts > 0 and terminated.get("exitCode")):
        code = crashed.get("exitCode", "?")
        return SpawnFailed("crash_loop", f"the server keeps crashing: exit code {code}")
    return None


# Taints a node carries while it joins (or after a blip): the scheduler retries
# once it is Ready, so a pod refused for them alone may still land.
_JOINING_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def start_failure(pod: Object, *, wait_unschedulable: bool = False) -> SpawnFailed | None:
    """Why this pod will not become a running server without someone changing something.

    With `wait_unschedulable` (a cluster autoscaler may add a node), a pod no node
    has room for is not a failure: the start timeout decides.
    """
    status = pod.get("status") or {}
    phase = status.get("phase")
    for container in status.get("containerStatuses") or ():
        failure = _container_failure(pod, container)
        if failure is not None:
            return failure
    if phase in ("Failed", "Succeeded"):
        return SpawnFailed("exited", "the server exited")
    scheduled = _condition(pod, "PodScheduled")
    if (
        scheduled is not None
        and scheduled.get("status") == "False"
        and scheduled.get("reason") == "Unschedulable"
        and not wait_unschedulable
    ):
        detail = scheduled.get("message") or "the cluster is full"
        if any(taint in detail for taint in _JOINING_TAINTS):
            return None  # a node on its way in: the scheduler tries again when it is Ready
        return SpawnFailed("unschedulable", f"no node has room: {detail}")
    return None


# Event reason -> (progress %, plain words for the person waiting). The cluster's
# own message (probe URLs, pod IPs, node names) is not for them: it goes to the
# log and to admins (event_detail). The order mirrors a start: scheduled,
# volumes, image, container, readiness.
_PROGRESS: dict[str, tuple[int, str]] = {
    "FailedScheduling": (10, "Waiting for a node with room"),
    "Scheduled": (20, "Found a node"),
    "SuccessfulAttachVolume": (30, "Storage attached"),
    "FailedMount": (30, "Waiting for storage"),
    "Pulling": (40, "Pulling the image"),
    "Pulled": (60, "Image ready"),
    "BackOff": (60, "Retrying after a failure"),
    "Failed": (60, "A step failed; retrying"),
    "Created": (70, "Server created"),
    "Started": (80, "Server started, waiting for it to answer"),
    "Unhealthy": (90, "Server not answering yet"),
}
_UNKNOWN_STEP = (15, "Still starting")
# Events about stopping are not progress of a start.
_IGNORED = frozenset(("Killing", "Preempting", "SandboxChanged"))


def progress_message(event: Object) -> tuple[int, str] | None:
    """(progress 0-100, plain words) for a Kubernetes Event about the pod, None to skip it.

    Like KubeSpawner's progress, the pod's Events become the steps of the
    spawn page, each with a percentage of the way to Ready; unlike it, the
    person waiting reads words, never the cluster's raw message.
    """
    reason = str(event.get("reason") or "")
    if not reason or reason in _IGNORED:
        return None
    return _PROGRESS.get(reason, _UNKNOWN_STEP)


def event_detail(event: Object) -> str:
    """The Event as the cluster wrote it ("Warning Unhealthy: Readiness probe failed: …")."""
    kind = str(event.get("type") or "Normal")
    reason = str(event.get("reason") or "?")
    message = " ".join(str(event.get("message") or "").split())  # one line
    return f"{kind} {reason}: {message}" if message else f"{kind} {reason}"
