"""JSON models of users and servers, in JupyterHub's shape, with fields filtered by scope.

Every field JupyterHub documents is present, null when unknown (datetimes
are ISO 8601 in UTC with a Z). Pure: reads the hub's state, changes nothing.
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import quote

from control.api.callers import Caller
from control.manifests import server_url
from control.names import server_key, split_key
from control.spawner import ServerStatus
from control.web.context import Hub

ACTIVE_STATES = frozenset({"starting", "running", "stopping"})
PENDING = {"starting": "spawn", "stopping": "stop"}


def isoformat(value: datetime.datetime | float | None) -> str | None:
    """ISO 8601 in UTC with a Z ("2026-01-02T03:04:05.678Z"), from a datetime or epoch seconds."""
    if value is None:
        return None
    if isinstance(value, int | float):
        value = datetime.datetime.fromtimestamp(value, datetime.UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    utc = value.astimezone(datetime.UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds") + "Z"


def user_path(user: str) -> str:
    return quote(user, safe="@")


def progress_url(key: str) -> str:
    user, server = split_key(key)
    if server:
        return f"/hub/api/users/{user_path(user)}/servers/{server}/progress"
    return f"/hub/api/users/{user_path(user)}/server/progress"


def last_activity(hub: Hub, user: str, status: ServerStatus | None = None) -> float | None:
    """Traffic through the edge (all replicas), from the activity tracker.

    With none seen yet, a server's start counts as activity (as JupyterHub
    records one at spawn), so an idle culler measures idleness from there;
    None when there is neither.
    """
    seen = hub.activity.last_activity(user) if hub.activity is not None else None
    if seen is None and status is not None:
        since = status.ready_at or status.started
        return since.timestamp() if since is not None else None
    return seen


def server_model(hub: Hub, user: str, status: ServerStatus) -> dict[str, Any]:
    """A server (`user`: its key, control.names.server_key) as JupyterHub describes one."""
    owner, server = split_key(user)
    return {
        "name": server,
        "full_name": f"{owner}/{server}" if server else owner,
        "ready": status.state == "running",
        "pending": PENDING.get(status.state),
        "stopped": status.state not in ACTIVE_STATES,
        "url": server_url(user),
        "progress_url": progress_url(user),
        "started": isoformat(status.started),
        "last_activity": isoformat(last_activity(hub, user, status)),
        "state": {"pod_name": status.pod},
        "user_options": {"profile": status.profile} if status.profile else {},
    }


def _created(hub: Hub, user: str) -> float | None:
    """When the user's record was made (first sign-in or creation); None for older users."""
    record = hub.records.get(user) if hub.records is not None else None
    return record.created if record is not None else None


def user_model(
    hub: Hub, caller: Caller, user: str, *, include_stopped: bool = False
) -> dict[str, Any]:
    """`user` as JupyterHub's user model, with the fields `caller`'s scopes allow; the
    `servers` map lists stopped named servers too with `include_stopped` (JupyterHub's
    ?include_stopped_servers)."""
    model: dict[str, Any] = {"kind": "user", "name": user}
    status = hub.spawner.status(user)
    named = {
        server: hub.spawner.status(server_key(user, server)) for server in hub.named_servers(user)
    }
    if caller.may("read:users", user):
        seen = [last_activity(hub, user, status)]
        seen += [last_activity(hub, server_key(user, s), st) for s, st in named.items()]
        newest = max((t for t in seen if t is not None), default=None)
        admin = hub.access.is_admin(user)
        model.update(
            admin=admin,
            roles=["admin"] if admin else ["user"],
            groups=[],
            created=isoformat(_created(hub, user)),
            last_activity=isoformat(newest),
        )
    if caller.may("read:servers", user):
        servers = {"": server_model(hub, user, status)} if status.state in ACTIVE_STATES else {}
        for server, server_status in named.items():
            if include_stopped or server_status.state in ACTIVE_STATES:
                servers[server] = server_model(hub, server_key(user, server), server_status)
        model.update(
            server=server_url(user) if status.state == "running" else None,
            pending=PENDING.get(status.state),
            servers=servers,
        )
    return model
