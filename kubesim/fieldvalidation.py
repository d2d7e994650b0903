"""The fieldValidation query parameter, answered as kube-apiserver answers it.

Strict (kubectl's default once the OpenAPI documents offer it) refuses a
field the recorded schema lacks: 400 from the decoder on create and update,
422 on field "patch" for a patch (checked on the patched object). Warn, also
the default with no parameter, accepts it with a `Warning: 299` header per
field; Ignore says nothing. Both drop the field before storing, as the real
decoder does. Kinds with no recorded schema are not checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from kubesim import fieldcheck, openapi
from kubesim.patch import STRATEGIC_MERGE_PATCH
from kubesim.resources import ResourceType
from kubesim.status import ApiError, bad_request

MODES = ("", "Ignore", "Strict", "Warn")
_OPTIONS = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions"}


def mode_of(request: web.Request, verb: str) -> str:
    """Strict, Warn or Ignore; an unknown value is the real server's 422."""
    mode = request.query.get("fieldValidation", "")
    if mode not in MODES:
        options = _OPTIONS[verb]
        supported = ", ".join(f'"{m}"' for m in MODES)
        message = f'Unsupported value: "{mode}": supported values: {supported}'
        cause = {"reason": "FieldValueNotSupported", "message": message, "field": "fieldValidation"}
        raise ApiError(
            422,
            "Invalid",
            f'{options}.meta.k8s.io "" is invalid: fieldValidation: {message}',
            {"group": "meta.k8s.io", "kind": options, "causes": [cause]},
        )
    return mode or "Warn"


def _unknown(rt: ResourceType, obj: Any, *, sort: bool = False, drop: bool = False) -> list[str]:
    found = openapi.schema_for(rt.group, rt.version, rt.kind)
    if found is None or not isinstance(obj, dict):
        return []
    return fieldcheck.unknown_fields(obj, *found, sort=sort, drop=drop)


def check_body(mode: str, rt: ResourceType, body: Any) -> list[str]:
    """A created or replaced object: raises under Strict, else drops the unknown fields.

    Returns the warnings to send (under Warn).
    """
    unknown = _unknown(rt, body, drop=mode != "Strict")
    if mode == "Ignore":
        return []
    if unknown and mode == "Strict":
        raise bad_request(
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
            + fieldcheck.decoding_error(unknown)
        )
    return unknown


def patch_check(
    mode: str, rt: ResourceType, content_type: str, document: Any, warnings: list[str]
) -> Callable[[Any], None]:
    """The check of a patched object; under Warn it fills `warnings`."""

    def check(patched: Any) -> None:
        unknown = _unknown(rt, patched, sort=True, drop=mode != "Strict")
        if not unknown or mode != "Strict":
            warnings.extend(unknown if mode == "Warn" else [])
            return
        quoted = (
            fieldcheck.go_format(document)
            if content_type == STRATEGIC_MERGE_PATCH
            else json.dumps(patched, separators=(",", ":"))
        )
        message = f"Invalid value: {json.dumps(quoted)}: {fieldcheck.decoding_error(unknown)}"
        raise ApiError(
            422,
            "Invalid",
            f' "" is invalid: patch: {message}',
            {"causes": [{"reason": "FieldValueInvalid", "message": message, "field": "patch"}]},
        )

    return check


def warn(response: web.Response, unknown: list[str]) -> web.Response:
    for path in unknown:
        response.headers.add("Warning", "299 - " + json.dumps(f'unknown field "{path}"'))
    return response
