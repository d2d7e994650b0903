"""Kubernetes Status errors: the one exception type the API server raises.

Every failure the simulated API answers with is an `ApiError` carrying the
exact Status body a real API server would send (reason, code, details).
This module builds error bodies only; it must never do I/O or know aiohttp.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


class ApiError(Exception):
    """A failed API call, answered as a `kind: Status` body with `code`."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Obj | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        }
        if self.reason:  # an internal error has none
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        return body


def success_status(resource: str, name: str, uid: str, group: str = "") -> Obj:
    """The body a delete answers with for kinds that do not echo the object.

    The real server names the resource (plural, lower case) in details.kind.
    """
    details: Obj = {"name": name, "kind": resource, "uid": uid}
    if group:
        details["group"] = group
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(resource, group)} "{name}" not found',
        {"name": name, "kind": resource, **({"group": group} if group else {})},
    )


def unknown_resource() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        {"name": name, "kind": resource, **({"group": group} if group else {})},
    )


def conflict(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": '
        "the object has been modified; please apply your changes to the latest "
        "version and try again",
        {"name": name, "kind": resource, **({"group": group} if group else {})},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(user: str, verb: str, resource: str, namespace: str | None, group: str) -> ApiError:
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return ApiError(
        403,
        "Forbidden",
        f'{resource} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
        f'in API group "{group}"{where}',
        {"kind": resource, **({"group": group} if group else {})},
    )


def invalid(kind: str, name: str, causes: list[Obj], group: str = "") -> ApiError:
    """422 with one cause per bad field, as kubectl and clients print them."""
    summary = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
    details: Obj = {"name": name, "kind": kind, "causes": causes}
    if group:
        details["group"] = group
    if len(causes) > 1:
        summary = f"[{summary}]"
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {summary}', details)


def unsupported_media_type(content_type: str) -> ApiError:
    # The real server names neither the type it got nor those it takes.
    del content_type
    return ApiError(415, "UnsupportedMediaType", "415: Unsupported Media Type", {})


def method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )
