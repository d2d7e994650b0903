"""Fault injection for tests: latency, errors per verb, dropped watches, 410s, paused kubelet.

Off by default. Driven over HTTP at /kubesim/faults (not a Kubernetes path):
GET shows the current settings, PUT/POST changes them with a JSON body:

    {"latency_ms": 200,
     "errors": {"create": {"code": 429, "rate": 1.0, "count": 2, "retry_after": 1}},
     "drop_watches": true,          # an action: close every open watch now
     "expire_next_watch": true,     # the next watch resume gets ERROR 410
     "compact": true,               # an action: forget all history (etcd compaction)
     "kubelet_paused": true,
     "reset": true}                 # back to no faults (applied first)

Verbs: get, list, watch, create, update, patch, delete, deletecollection.
This module holds the settings and decides; it never sleeps or does I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from kubesim.resources import ALL_VERBS
from kubesim.status import ApiError, bad_request

_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class VerbFault:
    code: int
    rate: float = 1.0
    count: int | None = None  # how many more times to fail; None: no limit
    retry_after: int = 1

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "rate": self.rate, "count": self.count,
                "retry_after": self.retry_after}  # fmt: skip


@dataclass
class Faults:
    latency_ms: float = 0.0
    errors: dict[str, VerbFault] = field(default_factory=dict)
    expire_next_watch: bool = False
    kubelet_paused: bool = False
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "errors": {verb: f.as_json() for verb, f in self.errors.items()},
            "expire_next_watch": self.expire_next_watch,
            "kubelet_paused": self.kubelet_paused,
        }

    def error_for(self, verb: str) -> ApiError | None:
        """The injected failure for this call, if one is due."""
        fault = self.errors.get(verb)
        if fault is None or self._random.random() >= fault.rate:
            return None
        if fault.count is not None:
            fault.count -= 1
            if fault.count <= 0:
                del self.errors[verb]
        reason = _REASONS.get(fault.code, "InternalError")
        headers: dict[str, str] = {}
        details: dict[str, Any] = {"causes": [{"reason": "InjectedFault", "message": "kubesim"}]}
        if fault.code == 429:
            headers["Retry-After"] = str(fault.retry_after)
            details["retryAfterSeconds"] = fault.retry_after
        message = f"kubesim injected fault: {reason}"
        return ApiError(fault.code, reason, message, details, headers)

    def take_expire_next_watch(self) -> bool:
        expire, self.expire_next_watch = self.expire_next_watch, False
        return expire

    def update(self, body: Any) -> dict[str, bool]:
        """Apply a settings document; returns the actions it asked for."""
        if not isinstance(body, dict):
            raise bad_request("fault settings must be a JSON object")
        unknown = set(body) - {"latency_ms", "errors", "drop_watches", "expire_next_watch",
                               "kubelet_paused", "reset", "compact"}  # fmt: skip
        if unknown:
            raise bad_request(f"unknown fault settings: {sorted(unknown)}")
        if body.get("reset"):
            self.latency_ms = 0.0
            self.errors.clear()
            self.expire_next_watch = False
            self.kubelet_paused = False
        if "latency_ms" in body:
            latency = body["latency_ms"]
            if not isinstance(latency, int | float) or latency < 0:
                raise bad_request("latency_ms must be a number >= 0")
            self.latency_ms = float(latency)
        for verb, spec in (body.get("errors") or {}).items():
            if verb not in ALL_VERBS:
                raise bad_request(f"unknown verb {verb!r}; one of {list(ALL_VERBS)}")
            if spec is None:
                self.errors.pop(verb, None)
                continue
            self.errors[verb] = _verb_fault(verb, spec)
        if "expire_next_watch" in body:
            self.expire_next_watch = bool(body["expire_next_watch"])
        if "kubelet_paused" in body:
            self.kubelet_paused = bool(body["kubelet_paused"])
        return {"drop_watches": bool(body.get("drop_watches")),
                "compact": bool(body.get("compact")),
                "pause_changed": "kubelet_paused" in body or bool(body.get("reset"))}  # fmt: skip


def _verb_fault(verb: str, spec: Any) -> VerbFault:
    if not isinstance(spec, dict) or not isinstance(spec.get("code"), int):
        raise bad_request(f"errors.{verb} needs an integer code")
    if not 400 <= spec["code"] <= 599:
        raise bad_request(f"errors.{verb}.code must be an HTTP error code")
    rate = spec.get("rate", 1.0)
    if not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise bad_request(f"errors.{verb}.rate must be between 0 and 1")
    count = spec.get("count")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise bad_request(f"errors.{verb}.count must be a positive integer")
    return VerbFault(spec["code"], float(rate), count, int(spec.get("retry_after", 1)))
