"""Per-user records: one small ConfigMap per user, the state every replica shares about users.

A record says that a user exists (they signed in, or were created through the
API, at any replica) and when all their sessions were last ended: a session
cookie issued before `sessions-not-before` is refused by every replica
(control.session_gate). Kubernetes holds it like everything else, so a
restarted or second replica learns it from list+watch (control.informer).

Pure builders and readers over plain dicts: no I/O, never reads the clock
(times are passed in as epoch seconds).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from control import names

Object = dict[str, Any]

# The selector the record informer watches; user pods carry a different component.
RECORD_LABELS = names.owned_labels("user-record")
RECORD_SELECTOR = names.label_selector(RECORD_LABELS)

# Keys of the ConfigMap's data (epoch seconds as decimal strings, as ConfigMap data are text).
NOT_BEFORE = "sessions-not-before"
CREATED = "created"
LAST_LOGIN = "last-login"
REMOVED = "removed"  # "true": deleted through the API; kept so the sign-out stays in force
# One key per named server the user made ("server.<name>": creation, epoch seconds), kept
# while it is stopped, until it is removed (JupyterHub's DELETE with remove: true).
SERVER_PREFIX = "server."
# Identity-provider sign-ins (control.auth.oidc): the user's groups (a JSON list), when
# they were last read (epoch seconds), and the refresh token, encrypted (oidc_refresh).
GROUPS = "oidc-groups"
GROUPS_CHECKED = "oidc-groups-checked"
REFRESH = "oidc-refresh"


@dataclass(frozen=True, slots=True)
class UserRecord:
    user: str
    not_before: float = 0.0  # sessions issued before this are ended
    created: float | None = None
    last_login: float | None = None
    removed: bool = False
    servers: tuple[str, ...] = ()  # named servers, sorted
    groups: frozenset[str] = frozenset()
    groups_checked: float | None = None
    refresh: str | None = None  # encrypted refresh token


def not_before_from(now: float) -> float:
    """The not-before of a sign-out at `now`: the next whole second.

    Cookies carry whole-second issue times, so every cookie issued in the
    second of the sign-out (which may predate it) must be refused; a sign-in
    in that same second waits for the next one (control.web.login).
    """
    return float(math.ceil(now))


def _seconds(value: float) -> str:
    return str(int(value))


def record_manifest(
    user: str, *, now: float, signed_in: bool = True, not_before: float | None = None
) -> Object:
    """A new record for `user`, created (and, if `signed_in`, signed in) at `now`."""
    data = {CREATED: _seconds(now)}
    if signed_in:
        data[LAST_LOGIN] = _seconds(now)
    if not_before is not None:
        data[NOT_BEFORE] = _seconds(not_before)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.record_name(user),
            "labels": {**RECORD_LABELS, names.USER_LABEL: names.user_label(user)},
            "annotations": {names.USER_ANNOTATION: user},
        },
        "data": data,
    }


def signed_in_patch(now: float) -> Object:
    """A merge patch saying the user signed in (or was created again) at `now`."""
    return {"data": {LAST_LOGIN: _seconds(now), REMOVED: None}}


def groups_data(groups: frozenset[str], now: float, refresh: str | None) -> dict[str, str | None]:
    """The record data of groups read from the provider at `now` (and the refresh token)."""
    return {
        GROUPS: json.dumps(sorted(groups), separators=(",", ":")),
        GROUPS_CHECKED: _seconds(now),
        REFRESH: refresh,
    }


def created_patch() -> Object:
    """A merge patch for a user created (again) through the API: listed from now on."""
    return {"data": {REMOVED: None}}


def sign_out_patch(not_before: float, *, removed: bool = False) -> Object:
    """A merge patch ending every session issued before `not_before` (and removing the user)."""
    data: dict[str, str | None] = {NOT_BEFORE: _seconds(not_before)}
    if removed:
        data[REMOVED] = "true"
    return {"data": data}


def server_patch(server: str, now: float | None) -> Object:
    """A merge patch recording the named server `server` (made at `now`), or forgetting it
    (`now` None)."""
    return {"data": {SERVER_PREFIX + server: _seconds(now) if now is not None else None}}


def _number(value: object) -> float | None:
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def parse_record(obj: Object) -> UserRecord | None:
    """The record a ConfigMap holds, or None if it is not one (no user annotation)."""
    metadata = obj.get("metadata") or {}
    user = (metadata.get("annotations") or {}).get(names.USER_ANNOTATION)
    if not isinstance(user, str) or not user:
        return None
    data = obj.get("data") or {}
    refresh = data.get(REFRESH)
    return UserRecord(
        user=user,
        not_before=_number(data.get(NOT_BEFORE)) or 0.0,
        created=_number(data.get(CREATED)),
        last_login=_number(data.get(LAST_LOGIN)),
        removed=data.get(REMOVED) == "true",
        servers=tuple(
            sorted(
                key[len(SERVER_PREFIX) :]
                for key, value in data.items()
                if key.startswith(SERVER_PREFIX) and value is not None
            )
        ),
        groups=_group_list(data.get(GROUPS)),
        groups_checked=_number(data.get(GROUPS_CHECKED)),
        refresh=refresh if isinstance(refresh, str) and refresh else None,
    )


def _group_list(text: object) -> frozenset[str]:
    """The groups a record lists; anything unreadable counts as none."""
    try:
        value = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        return frozenset()
    if not isinstance(value, list):
        return frozenset()
    return frozenset(v for v in value if isinstance(v, str))
