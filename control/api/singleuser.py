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
from control.singleuser_env import SERVER_NAME, access_scopes, client_owner
from control.singleuser_hub import SingleuserHub
from control.web.context import Hub, hub_of


def _identify_scopes(user: str) -> list[str]:
    # What any token may learn about its own user (JupyterHub's `identify`).
    return [f"read:users:name!user={user}", f"read:users:groups!user={user}"]


def server_scopes(user: str) -> list[str]:
    """The scopes of a server's own token (JupyterHub's `server` role, expanded)."""
    return sorted(
        {
            f"access:servers!server={user}/{SERVER_NAME}",
            f"users:activity!user={user}",
            f"read:users:activity!user={user}",
            *_identify_scopes(user),
        }
    )


def oauth_scopes(visitor: str, owner: str) -> list[str]:
    """The scopes of a token the hub issued to `owner`'s server for `visitor`."""
    return sorted({access_scopes(owner)[0], *_identify_scopes(visitor)})


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
    owner = singleuser.tokens.user_of(token)
    if owner is not None:
        return _model(hub, owner, server_scopes(owner))
    grant = singleuser.grants.read_token(token, singleuser.clock())
    if grant is None:
        return None
    owner = client_owner(grant.client_id)
    if owner is None or not _still_admitted(hub, grant.user, grant.issued):
        raise ApiError(403, "This token was revoked: sign in again")
    if grant.user != owner and not (hub.admin_access and hub.access.is_admin(grant.user)):
        # Issued to an admin under edge.admin_access, which is off (or they are no admin) now.
        raise ApiError(403, f"{grant.user} may no longer use the server of {owner}")
    return _model(hub, grant.user, oauth_scopes(grant.user, owner))


def _still_admitted(hub: Hub, user: str, issued: float) -> bool:
    """The user may still sign in and was not signed out everywhere since the grant."""
    if not hub.access.is_allowed(user):
        return False
    return hub.gate is None or hub.gate.admits(user, int(issued))


def _reported_time(data: object) -> float:
    """The newest time in JupyterHub's activity body, or ApiError 400 naming what is wrong."""
    if not isinstance(data, dict):
        raise ApiError(400, "Activity body must be a JSON object")
    times: list[object] = []
    if "last_activity" in data:
        times.append(data["last_activity"])
    servers = data.get("servers", {})
    if not isinstance(servers, dict):
        raise ApiError(400, "servers must be an object of server name -> {last_activity}")
    for name, server in servers.items():
        if name != SERVER_NAME:
            raise ApiError(400, f"No such server: {name!r} (only the default server exists)")
        if not isinstance(server, dict) or "last_activity" not in server:
            raise ApiError(400, f"servers[{name!r}] needs a last_activity")
        times.append(server["last_activity"])
    if not times:
        raise ApiError(400, "Activity body needs last_activity or servers")
    parsed = [parse_activity(t) for t in times]
    if any(t is None for t in parsed):
        raise ApiError(400, "last_activity must be an ISO 8601 timestamp")
    return max(t for t in parsed if t is not None)


async def post_activity(request: web.Request) -> web.Response:
    """POST /hub/api/users/<name>/activity: the server's own token, or `users:activity`."""
    hub = hub_of(request)
    name = request.match_info["name"]
    singleuser = hub.singleuser
    if singleuser is None or server_token_user(request, singleuser) != name:
        require(caller_of(request, hub), ["users:activity"], name)
    if singleuser is None:
        raise ApiError(404, "No server reports activity here: spawner.hub_api is off")
    when = min(_reported_time(await json_body(request)), singleuser.clock())
    try:
        await singleuser.report_activity(name, when)
    except NotFound:
        raise ApiError(404, f"No such user or server: {name}") from None
    return web.Response(status=200, content_type="text/plain")
