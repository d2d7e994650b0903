"""The one place where API answers and transport failures become control.errors.

Every failure of a Kubernetes call passes through here: an HTTP answer that
is not 2xx becomes a KubeError subclass chosen by status and Status reason,
and anything that kept an answer from arriving (refused, reset, timeout, TLS)
becomes KubeUnavailable with status 0. It never raises aiohttp or
kubernetes_asyncio exceptions and never retries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from control.errors import (
    AlreadyExists,
    Conflict,
    Expired,
    Forbidden,
    Invalid,
    KubeError,
    KubeThrottled,
    KubeUnavailable,
    NotFound,
)

# What a call may raise on the way; translate() turns each into a KubeError.
TRANSPORT_ERRORS = (aiohttp.ClientError, ApiException, TimeoutError, OSError, ValueError)

DEFAULT_RETRY_AFTER = 1.0  # seconds, when a 429 carries no usable Retry-After

_BY_STATUS: dict[int, type[KubeError]] = {
    400: Invalid,
    401: Forbidden,
    403: Forbidden,
    404: NotFound,
    410: Expired,
    422: Invalid,
}


def status_fields(body: bytes | str | None) -> tuple[str, str]:
    """The (reason, message) of a Status body; whatever text there is when it is not one."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        status = json.loads(text)
    except ValueError:
        return "", text.strip()[:200]
    if not isinstance(status, dict):
        return "", text.strip()[:200]
    return str(status.get("reason") or ""), str(status.get("message") or "")


def retry_after_seconds(headers: Mapping[str, str] | None) -> float:
    value = (headers or {}).get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_RETRY_AFTER  # an HTTP date or garbage: the usual second
    return seconds if seconds >= 0 else DEFAULT_RETRY_AFTER


def error_for_answer(
    status: int, body: bytes | str | None, headers: Mapping[str, str] | None = None
) -> KubeError:
    """The KubeError for an HTTP answer with a non-2xx status."""
    reason, message = status_fields(body)
    if status == 409:
        # One status, two meanings: create lost to an existing object, or a write lost a race.
        kind: type[KubeError] = AlreadyExists if reason == "AlreadyExists" else Conflict
        return kind(status, reason or "Conflict", message)
    if status == 429:
        return KubeThrottled(
            status, reason or "TooManyRequests", message, retry_after_seconds(headers)
        )
    if status >= 500 or status < 400:
        return KubeUnavailable(status, reason or "ServerError", message)
    kind = _BY_STATUS.get(status, Invalid)  # other 4xx: we sent something the API refuses
    return kind(status, reason or kind.__name__, message)


def unreachable(error: BaseException) -> KubeUnavailable:
    """KubeUnavailable (status 0) for a call that got no answer at all."""
    if isinstance(error, TimeoutError):
        return KubeUnavailable(0, "Timeout", "the Kubernetes API did not answer in time")
    detail = str(error) or type(error).__name__
    return KubeUnavailable(0, "Unreachable", f"no answer from the Kubernetes API: {detail}")


def translate(error: BaseException) -> KubeError:
    """The KubeError for anything a call raised (use as `raise translate(e) from e`)."""
    if isinstance(error, KubeError):
        return error
    if isinstance(error, ApiException) and error.status:
        return error_for_answer(error.status, error.body, error.headers)
    if isinstance(error, ValueError) and not isinstance(error, aiohttp.ClientError):
        # A 2xx answer whose body is not the JSON it should be.
        return KubeUnavailable(0, "BadAnswer", f"undecodable answer from the API: {error}")
    return unreachable(error)
