"""/hub/api/users and /hub/api/user: list, read, create and delete users; who am I.

The list pages over the user directory's sorted, cached names without
building a model per user: with 50,000 users a page costs its own size,
and the `state` filters walk only the users that have a pod. Users come
from the configuration, from sign-ins and from this API; with the password
authenticator the configuration is the only source, so creating one is
refused. Never lists more than one page of models, never forgets a
configured user.

Who exists is shared through the user records (control.user_records):
creating a user writes one, deleting one marks it removed and ends every
session of that user, and DELETE .../sessions ends them without removing
the user (an admin's "sign this user out everywhere").
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from control.api.bodies import empty_answer, json_answer, json_body
from control.api.callers import ApiError, Caller, caller_of, require
from control.api.models import ACTIVE_STATES, user_model
from control.api.servers import STOP_WAIT_SECONDS, stopped_within
from control.api.singleuser import token_model
from control.auth import PasswordAuthenticator
from control.errors import BadUserName
from control.manifests import pod_key
from control.names import normalise_username, split_key
from control.stop_cause import StopCause
from control.web.context import Hub, hub_of

PAGINATION_TYPE = "application/jupyterhub-pagination+json"
DEFAULT_LIMIT = 50  # JupyterHub's api_page_default_limit
MAX_LIMIT = 200  # JupyterHub's api_page_max_limit
STATES = ("active", "ready", "inactive")


def _pagination(request: web.Request) -> tuple[int, int]:
    try:
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", str(DEFAULT_LIMIT)))
    except ValueError:
        raise ApiError(400, "Invalid argument type, offset and limit must be integers") from None
    return max(offset, 0), min(max(limit, 1), MAX_LIMIT)


def active_users(hub: Hub) -> list[str]:
    """Users with a server (default or named) starting, running or stopping, sorted."""
    keys = {key for key in map(pod_key, hub.spawner.pods.cache.values()) if key}
    active = (split_key(k)[0] for k in keys if hub.spawner.status(k).state in ACTIVE_STATES)
    return sorted(set(active))


def _selection(hub: Hub, caller: Caller, state: str | None) -> tuple[Iterable[str], int]:
    """The names the list covers, in order, and how many there are (no model built)."""
    names = hub.users.names()
    busy: set[str] = set()
    if state == "ready":
        names = hub.spawner.running_users()
    elif state == "active":
        names = active_users(hub)
    elif state == "inactive":
        busy = set(active_users(hub))
    if caller.only is not None:  # a signed-in user sees only themselves
        seen = _contains(names, caller.only) and caller.only not in busy
        return ([caller.only] if seen else []), int(seen)
    if busy:
        listed = sum(1 for user in busy if _contains(names, user))
        return (name for name in names if name not in busy), len(names) - listed
    return names, len(names)


def _contains(names: list[str], name: str) -> bool:
    """Membership in a sorted list, without a set of 50,000 names per request."""
    at = bisect.bisect_left(names, name)
    return at < len(names) and names[at] == name


def _page(names: Iterable[str], offset: int, limit: int) -> list[str]:
    if isinstance(names, list):
        return names[offset : offset + limit]
    return list(itertools.islice(names, offset, offset + limit))


async def list_users(request: web.Request) -> web.Response:
    hub = hub_of(request)
    caller = caller_of(request, hub)
    require(caller, ("list:users",))
    state = request.query.get("state") or None
    if state is not None and state not in STATES:
        raise ApiError(400, f"Unrecognized state filter: {state!r}")
    offset, limit = _pagination(request)
    names, total = _selection(hub, caller, state)
    stopped = "include_stopped_servers" in request.query
    items = [
        user_model(hub, caller, name, include_stopped=stopped)
        for name in _page(names, offset, limit)
    ]
    if PAGINATION_TYPE not in request.headers.get("Accept", ""):
        return json_answer(items)
    following = offset + limit
    next_page = None
    if following < total:
        url = request.url.update_query(offset=str(following), limit=str(limit))
        next_page = {"offset": following, "limit": limit, "url": str(url)}
    pagination = {"offset": offset, "limit": limit, "total": total, "next": next_page}
    return json_answer({"items": items, "_pagination": pagination})


def _named_user(request: web.Request) -> str:
    try:
        return normalise_username(request.match_info["name"])
    except BadUserName:
        raise ApiError(404, "No such user") from None


def _existing_user(request: web.Request, hub: Hub, caller: Caller, scopes: Iterable[str]) -> str:
    user = _named_user(request)
    require(caller, scopes, user)
    if user not in hub.users:
        raise ApiError(404, f"No such user: {user}")
    return user


async def get_user(request: web.Request) -> web.Response:
    hub = hub_of(request)
    caller = caller_of(request, hub)
    user = _existing_user(request, hub, caller, ("read:users", "read:users:name", "read:servers"))
    stopped = "include_stopped_servers" in request.query
    return json_answer(user_model(hub, caller, user, include_stopped=stopped))


async def who_am_i(request: web.Request) -> web.Response:
    hub = hub_of(request)
    # A jupyterhub-singleuser server asking who its visitor (or itself) is.
    server_model = token_model(request, hub)
    if server_model is not None:
        return json_answer(server_model)
    caller = caller_of(request, hub)
    if caller.kind == "service":
        model: dict[str, Any] = {
            "kind": "service",
            "name": caller.name,
            "admin": "admin" in caller.configured_scopes,
            "roles": [],
        }
    else:
        # Anyone may read their own model here, whatever else they may do.
        own = Caller(
            caller.name, "user", caller.scopes | {"read:users", "read:servers"}, caller.only
        )
        model = user_model(hub, own, caller.name)
    if caller.token_id is not None:
        # A personal token: its scopes filtered to its user, as JupyterHub lists them.
        model["scopes"] = caller.listed_scopes()
        model["token_id"] = caller.token_id
        return json_answer(model)
    model["scopes"] = sorted(caller.scopes)
    return json_answer(model)


def _refuse_configured_source(hub: Hub) -> None:
    if isinstance(hub.authenticator, PasswordAuthenticator):
        raise ApiError(400, "users come from the configuration (password authenticator)")


def _check_new_user_options(data: object) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    if data.get("admin"):
        raise ApiError(400, "admins come from the configuration (auth.admins)")


async def create_user(request: web.Request) -> web.Response:
    hub = hub_of(request)
    caller = caller_of(request, hub)
    require(caller, ("admin:users",))
    user = _named_user(request)
    data = await json_body(request)
    _check_new_user_options(data)
    if user in hub.users:
        raise ApiError(409, f"User {user} already exists")
    _refuse_configured_source(hub)
    hub.users.remember(user)
    if hub.records is not None:
        await hub.records.created(user)
    return json_answer(user_model(hub, caller, user), 201)


async def create_users(request: web.Request) -> web.Response:
    hub = hub_of(request)
    caller = caller_of(request, hub)
    require(caller, ("admin:users",))
    data = await json_body(request)
    if not isinstance(data, dict) or not data.get("usernames"):
        raise ApiError(400, "Must specify at least one user to create")
    raw_names = data.pop("usernames")
    _check_new_user_options(data)
    if not isinstance(raw_names, list) or not all(isinstance(n, str) for n in raw_names):
        raise ApiError(400, "usernames must be a list of names")
    _refuse_configured_source(hub)
    names, invalid = [], []
    for raw in raw_names:
        try:
            names.append(normalise_username(raw))
        except BadUserName:
            invalid.append(raw)
    if invalid:
        raise ApiError(
            400, f"Invalid username{'s' if len(invalid) > 1 else ''}: {', '.join(invalid)}"
        )
    new = [name for name in dict.fromkeys(names) if name not in hub.users]
    if not new:
        raise ApiError(409, f"All {len(raw_names)} users already exist")
    for name in new:
        hub.users.remember(name)
        if hub.records is not None:
            await hub.records.created(name)
    return json_answer([user_model(hub, caller, name) for name in new], 201)


async def delete_user(request: web.Request) -> web.Response:
    hub = hub_of(request)
    caller = caller_of(request, hub)
    user = _existing_user(request, hub, caller, ("delete:users",))
    if caller.kind == "user" and caller.name == user:
        raise ApiError(400, "Cannot delete yourself!")
    if hub.users.is_configured(user):
        raise ApiError(400, f"{user} comes from the configuration; remove them there")
    status = hub.spawner.status(user)
    if status.state == "stopping":
        raise ApiError(400, f"{user}'s server is in the process of stopping, please wait.")
    if status.state != "stopped":
        await hub.spawner.stop(user, StopCause("api", caller.name, "user deleted"))
        if not await stopped_within(hub, user, STOP_WAIT_SECONDS):
            raise ApiError(400, f"{user}'s server is in the process of stopping, please wait.")
    if hub.records is not None:  # their cookies end with them, at every replica
        await hub.records.sign_out_everywhere(user, removed=True)
    hub.users.forget(user)
    return empty_answer(204)


async def sign_out_everywhere(request: web.Request) -> web.Response:
    """End every session of the user at every replica; they can sign in again."""
    hub = hub_of(request)
    caller = caller_of(request, hub)
    user = _existing_user(request, hub, caller, ("admin:users",))
    if hub.records is None:
        raise ApiError(503, "sessions cannot be ended here: no user records")
    await hub.records.sign_out_everywhere(user)
    return empty_answer(204)
