"""/hub/api/users/{name}/server and .../servers/{server}: start (with user_options) and
stop a user's default server or one of their named servers.

Status codes as JupyterHub's: a start answers 201 when the server is
ready, 202 while it is starting (already, or still), 400 when it is
already running or stopping; a stop answers 204 once stopped, 202 while
the pod is still going away. Too many starts under way is a 429 with
Retry-After (JSON). The spawner does the work: nothing here talks to
Kubernetes, and a refused call never touches the pod.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from control.api.bodies import empty_answer, json_body
from control.api.callers import ApiError, Caller, caller_of, require
from control.errors import BadServerName, BadUserName
from control.names import check_server_name, normalise_username, server_key
from control.stop_cause import StopCause
from control.web.context import Hub, hub_of

# How long a call waits for the pod watch to confirm a start is ready or a stop is done
# before answering "still pending" (JupyterHub waits its slow_spawn/slow_stop_timeout).
START_WAIT_SECONDS = 1.0
STOP_WAIT_SECONDS = 3.0
_STEP = 0.05
USER_OPTIONS = frozenset({"profile"})


def _owner(request: web.Request, hub: Hub, scopes: tuple[str, ...]) -> tuple[str, Caller]:
    """The user named in the path, and the caller allowed `scopes` on them."""
    caller = caller_of(request, hub)
    try:
        user = normalise_username(request.match_info["name"])
    except BadUserName:
        raise ApiError(404, "No such user") from None
    require(caller, scopes, user)
    if user not in hub.users:
        raise ApiError(404, f"No such user: {user}")
    return user, caller


def _profile(options: object) -> str | None:
    if options is None:
        return None
    if not isinstance(options, dict):
        raise ApiError(400, "user_options must be a JSON object")
    unknown = sorted(set(options) - USER_OPTIONS)
    if unknown:
        raise ApiError(400, f"unsupported user option {unknown[0]!r}: only 'profile' is offered")
    profile = options.get("profile")
    if profile is not None and not isinstance(profile, str):
        raise ApiError(400, "profile must be a profile's slug")
    return profile or None


def _named(request: web.Request, hub: Hub, user: str) -> str:
    """The named server in the path, checked as JupyterHub checks it (400s that say why)."""
    if not hub.spawner.settings.named_servers:
        raise ApiError(400, "Named servers are not enabled.")
    try:
        return check_server_name(request.match_info["server"])
    except BadServerName as e:
        raise ApiError(400, str(e)) from None


def _check_limit(hub: Hub, user: str, server: str) -> None:
    """400 when a new named server would pass spawner.named_server_limit_per_user."""
    limit = hub.spawner.settings.named_server_limit_per_user
    existing = hub.named_servers(user)
    if server not in existing and len(existing) >= limit:
        raise ApiError(
            400,
            f"User {user} already has the maximum of {limit} named servers."
            "  One must be deleted before a new server can be created",
        )


async def start_server(request: web.Request) -> web.Response:
    hub = hub_of(request)
    user, _ = _owner(request, hub, ("start:servers",))
    return await _start(request, hub, user, "")


async def start_named_server(request: web.Request) -> web.Response:
    """POST /hub/api/users/<name>/servers/<server>: start (creating) a named server."""
    hub = hub_of(request)
    user, _ = _owner(request, hub, ("start:servers",))
    server = _named(request, hub, user)
    _check_limit(hub, user, server)
    await hub.remember_server(user, server)  # a KubeError: the wrapper answers 503
    return await _start(request, hub, user, server)


async def _start(request: web.Request, hub: Hub, user: str, server: str) -> web.Response:
    profile = _profile(await json_body(request))
    key = server_key(user, server)
    label = f"{user}'s server" if not server else f"{user}'s server {server!r}"
    state = hub.spawner.status(key).state
    if state == "starting":
        return empty_answer(202)
    if state == "stopping":
        raise ApiError(400, f"{label} is pending stop")
    if state == "running":
        raise ApiError(400, f"{label} is already running")
    await hub.spawner.start(key, profile)  # errors: the wrapper answers 400/429/503
    status = await hub.spawner.wait(key, START_WAIT_SECONDS)
    return empty_answer(201 if status.state == "running" else 202)


async def stop_server(request: web.Request) -> web.Response:
    hub = hub_of(request)
    user, caller = _owner(request, hub, ("delete:servers",))
    return await _stop(hub, user, caller, "DELETE /hub/api/users/{name}/server")


async def stop_named_server(request: web.Request) -> web.Response:
    """DELETE /hub/api/users/<name>/servers/<server>: stop a named server, and with
    `{"remove": true}` forget it once stopped (its claim, if any, is kept)."""
    hub = hub_of(request)
    user, caller = _owner(request, hub, ("delete:servers",))
    server = _named(request, hub, user)
    body = await json_body(request)
    if body is not None and not isinstance(body, dict):
        raise ApiError(400, 'The body must be a JSON object such as {"remove": true}')
    remove = (body or {}).get("remove", False)
    if not isinstance(remove, bool):
        raise ApiError(400, "remove must be true or false")
    if server not in hub.named_servers(user):
        raise ApiError(404, f"{user} has no server named '{server}'")
    if remove and hub.records is not None:
        # Forgotten first: once its pod is gone, nothing remembers it (no task to wait).
        await hub.records.remove_server(user, server)
    key = server_key(user, server)
    return await _stop(hub, key, caller, "DELETE /hub/api/users/{name}/servers/{server}")


async def _stop(hub: Hub, key: str, caller: Caller, what: str) -> web.Response:
    state = hub.spawner.status(key).state
    if state == "stopping":
        return empty_answer(202)
    if state != "stopped":
        await hub.spawner.stop(key, StopCause("api", caller.name, what))
    done = await stopped_within(hub, key, STOP_WAIT_SECONDS)
    return empty_answer(204 if done else 202)


async def _settled(hub: Hub, user: str, states: tuple[str, ...], seconds: float) -> str:
    """The user's server state once it is one of `states`, or the state after `seconds`."""
    for _ in range(max(1, int(seconds / _STEP))):
        state = hub.spawner.status(user).state
        if state in states:
            return state
        await asyncio.sleep(_STEP)
    return hub.spawner.status(user).state


async def stopped_within(hub: Hub, user: str, seconds: float) -> bool:
    """Whether the server's pod (`user`: a server key) is gone, as the pod watch sees it,
    within `seconds`."""
    return await _settled(hub, user, ("stopped", "failed"), seconds) in ("stopped", "failed")
