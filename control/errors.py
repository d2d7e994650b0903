"""The control plane's own exceptions, raised below and mapped to answers in one place.

Nothing here imports aiohttp or kubernetes_asyncio: control.k8s translates
API and transport errors into KubeError subclasses (chaining the cause), and
the web layer turns every ControlError into a page or a JSON error.
"""

from __future__ import annotations


class ControlError(Exception):
    """Base of every error the control plane raises on purpose."""


class BadUserName(ControlError):
    """A user name that cannot be used; the message says why, for the person who typed it."""


class BadServerName(ControlError):
    """A named server's name JupyterHub would refuse; the message says what is wrong."""


class BadProfile(ControlError):
    """A profile choice (or user option) the configuration does not offer."""


class KubeError(ControlError):
    """The Kubernetes API refused or could not answer a call."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else f"{reason}: {message}")
        self.status = status  # HTTP status, 0 when no answer came at all
        self.reason = reason  # the Status reason (NotFound, AlreadyExists...) or our own word
        self.message = message


class NotFound(KubeError):
    """404: the object does not exist."""


class AlreadyExists(KubeError):
    """409 AlreadyExists on create: someone (maybe another replica) made it first."""


class Conflict(KubeError):
    """409 Conflict: a write lost a race on resourceVersion."""


class Expired(KubeError):
    """410 Expired/Gone: the resourceVersion is too old to resume from; list again."""


class Invalid(KubeError):
    """400/422: the API rejected what we sent (a bug or a bad configuration)."""


class Forbidden(KubeError):
    """401/403: our credentials or RBAC do not allow the call."""


class KubeUnavailable(KubeError):
    """No usable answer: connection refused or reset, timeout, or a 5xx."""


class KubeThrottled(KubeError):
    """429: the API asks us to come back after `retry_after` seconds."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float) -> None:
        super().__init__(status, reason, message)
        self.retry_after = retry_after


class SpawnError(ControlError):
    """A server could not be started (or stopped) as asked."""


class SpawnLimitReached(SpawnError):
    """Too many servers are starting at once; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many servers are starting; retrying shortly")
        self.retry_after = retry_after


class ClusterNotSynced(SpawnError):
    """The pod watch has not listed the cluster yet (just started, or the API is away):
    starting now could not tell a running server from a missing one."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("podgate is still reading the cluster's state; retrying shortly")
        self.retry_after = retry_after


class SpawnFailed(SpawnError):
    """A start that ended without a running server.

    `reason` is a short stable word for metrics and the API (image_pull,
    crash_loop, out_of_memory, unschedulable, exited, timeout, api_error,
    deleted, error);
    `message` says what happened in words a user understands.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
