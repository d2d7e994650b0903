"""The /hub/api calls a jupyterhub-singleuser server makes: who is this token, and my activity.

Two kinds of token come from such a server, besides the configured API
tokens (control.api.callers):
- its own JUPYTERHUB_API_TOKEN (control.singleuser_tokens): JupyterHub's
  `server` role, i.e. access to that server and posting its owner's activity;
- an OAuth access token the hub issued to it for a browser (control.web.oauth):
  access to that server as the signed-in user, and their name. It ends with
  a sign-out everywhere, like the session it came from.

GET /hub/api/user answers either with the user model and the scopes
JupyterHub would list, filtered to that one server, so the server admits
exactly whom JupyterHub would (its owner). Any other use of these tokens
is refused by the ordinary API (they are no API tokens).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control.activity import parse_activity
from control.api.bodies import json_body
from control.api.callers import ApiError, caller_of, presented_token, require
from control.errors import NotFound
from control.names import server_key, split_key
from control.singleuser_env import access_scopes, client_owner
from control.singleuser_hub import SingleuserHub
from control.web.context import Hub, hub_of


def _identify_scopes(user: str) -> list[str]:
    # What any token may learn about its own user (JupyterHub's `identify`).
    return [f"read:users:name!user={user}", f"read:users:groups!user={user}"]


def server_scopes(key: str) -> list[str]:
    """The scopes of a server's own token (JupyterHub's `server` role, expanded)."""
    user, server = split_key(key)
    return sorted(
        {
            f"access:servers!server={user}/{server}",
            f"users:activity!user={user}",
            f"read:users:activity!user={user}",
            *_identify_scopes(user),
        }
    )


def oauth_scopes(visitor: str, key: str) -> list[str]:
    """The scopes of a token the hub issued to the server `key` for `visitor`."""
    return sorted({access_scopes(*split_key(key))[0], *_identify_scopes(visitor)})


def _model(hub: Hub, user: str, scopes: list[str]) -> dict[str, Any]:
    return {
        "kind": "user",
        "name": user,
        "admin": hub.access.is_admin(user),
        "groups": [],
        "roles": [],
        "scopes": scopes,
        "session_id": None,
    }


def server_token_user(request: web.Request, singleuser: SingleuserHub) -> str | None:
    """The owner of the server whose own token the request carries, if it does."""
    token = presented_token(request)
    return singleuser.tokens.user_of(token) if token else None


def token_model(request: web.Request, hub: Hub) -> dict[str, Any] | None:
    """The user model for a server's token or a hub-issued OAuth token; None for others."""
    singleuser = hub.singleuser
    token = presented_token(request)
    if singleuser is None or not token:
        return None
    key = singleuser.tokens.server_of(token)
    if key is not None:
        return _model(hub, split_key(key)[0], server_scopes(key))
    grant = singleuser.grants.read_token(token, singleuser.clock())
    if grant is None:
        return None
    # A stopped server's client is no longer known: its default-server id still parses.
    key = singleuser.tokens.client_server(grant.client_id) or client_owner(grant.client_id)
    if key is None or not _still_admitted(hub, grant.user, grant.issued):
        raise ApiError(403, "This token was revoked: sign in again")
    owner = split_key(key)[0]
    if grant.user != owner and not (hub.admin_access and hub.access.is_admin(grant.user)):
        # Issued to an admin under edge.admin_access, which is off (or they are no admin) now.
        raise ApiError(403, f"{grant.user} may no longer use the server of {owner}")
    return _model(hub, grant.user, oauth_scopes(grant.user, key))


def _still_admitted(hub: Hub, user: str, issued: float) -> bool:
    """The user may still sign in and was not signed out everywhere since the grant."""
    if not hub.access.is_allowed(user):
        return False
    return hub.gate is None or hub.gate.admits(user, int(issued))


def _reported_times(data: object) -> dict[str, float]:
    """Server name -> the newest time JupyterHub's activity body gives it ("" for a
    top-level last_activity alone), or ApiError 400 naming what is wrong."""
    if not isinstance(data, dict):
        raise ApiError(400, "Activity body must be a JSON object")
    servers = data.get("servers", {})
    if not isinstance(servers, dict):
        raise ApiError(400, "servers must be an object of server name -> {last_activity}")
    times: dict[str, float] = {}
    for name, server in servers.items():
        if not isinstance(server, dict) or "last_activity" not in server:
            raise ApiError(400, f"servers[{name!r}] needs a last_activity")
        times[name] = _parsed(server["last_activity"])
    if "last_activity" in data:
        overall = _parsed(data["last_activity"])
        if not times:
            times[""] = overall
    if not times:
        raise ApiError(400, "Activity body needs last_activity or servers")
    return times


def _parsed(value: object) -> float:
    moment = parse_activity(value)
    if moment is None:
        raise ApiError(400, "last_activity must be an ISO 8601 timestamp")
    return moment


async def post_activity(request: web.Request) -> web.Response:
    """POST /hub/api/users/<name>/activity: a token of one of the user's servers, or
    `users:activity`; each server named in the body gets its activity."""
    hub = hub_of(request)
    name = request.match_info["name"]
    singleuser = hub.singleuser
    token = presented_token(request)
    own = singleuser.tokens.server_of(token) if singleuser is not None and token else None
    if own is None or split_key(own)[0] != name:
        require(caller_of(request, hub), ["users:activity"], name)
    if singleuser is None:
        raise ApiError(404, "No server reports activity here: spawner.hub_api is off")
    reported = _reported_times(await json_body(request))
    known = hub.named_servers(name)
    for server in reported:
        # As JupyterHub: any server of the user (its `server` role holds users:activity
        # for the whole user), but only servers that exist.
        if server and server not in known:
            raise ApiError(400, f"No such server {server!r} for user {name}")
    now = singleuser.clock()
    for server, when in reported.items():
        try:
            await singleuser.report_activity(server_key(name, server), min(when, now))
        except NotFound:
            label = f"{name}/{server}" if server else name
            raise ApiError(404, f"No such user or server: {label}") from None
    return web.Response(status=200, content_type="text/plain")
