"""/hub/api/users/{name}/server: start (with user_options) and stop a user's server.

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
from control.errors import BadUserName
from control.names import normalise_username
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


async def start_server(request: web.Request) -> web.Response:
    hub = hub_of(request)
    user, _ = _owner(request, hub, ("start:servers",))
    profile = _profile(await json_body(request))
    state = hub.spawner.status(user).state
    if state == "starting":
        return empty_answer(202)
    if state == "stopping":
        raise ApiError(400, f"{user}'s server is pending stop")
    if state == "running":
        raise ApiError(400, f"{user}'s server is already running")
    await hub.spawner.start(user, profile)  # errors: the wrapper answers 400/429/503
    status = await hub.spawner.wait(user, START_WAIT_SECONDS)
    return empty_answer(201 if status.state == "running" else 202)


async def stop_server(request: web.Request) -> web.Response:
    hub = hub_of(request)
    user, caller = _owner(request, hub, ("delete:servers",))
    state = hub.spawner.status(user).state
    if state == "stopping":
        return empty_answer(202)
    if state != "stopped":
        cause = StopCause("api", caller.name, "DELETE /hub/api/users/{name}/server")
        await hub.spawner.stop(user, cause)
    done = await stopped_within(hub, user, STOP_WAIT_SECONDS)
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
    """Whether the user's pod is gone (as the pod watch sees it) within `seconds`."""
    return await _settled(hub, user, ("stopped", "failed"), seconds) in ("stopped", "failed")
