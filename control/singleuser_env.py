"""The environment jupyterhub-singleuser expects, as JupyterHub's Spawner.get_env sets it.

A pod started with `spawner.hub_api` runs the stock `jupyterhub-singleuser`
(or a docker-stacks image, whose start script runs it once
JUPYTERHUB_API_TOKEN is set). That server reads who it belongs to, where the
hub's API is, its OAuth client and the scopes a visitor must hold from these
variables. The names and values follow JupyterHub's own spawner, for a
user's default server (server name "") and for a named one; podgate's hub answers them
(control.api.singleuser, control.web.oauth).

The API token is the pod's own token (the one the edge would otherwise add
upstream), delivered in the pod spec's env as that token always was; the
hub finds a pod by it (control.singleuser_tokens). Pure: no I/O, no clock,
no environment reads.
"""

from __future__ import annotations

import json
from urllib.parse import quote, unquote

API_TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
CLIENT_ID_PREFIX = "jupyterhub-user-"
SERVER_NAME = ""  # the user's default server


def escaped_name(user: str) -> str:
    """JupyterHub's User.escaped_name: the name as one URL path segment."""
    return quote(user, safe="@~")


def client_id(user: str, server: str = SERVER_NAME) -> str:
    """The OAuth client of one of `user`'s servers (JupyterHub's Spawner.oauth_client_id):
    "jupyterhub-user-<name>", plus "-<server>" for a named server."""
    base = CLIENT_ID_PREFIX + escaped_name(user)
    return f"{base}-{quote(server, safe='')}" if server else base


def callback_url(prefix: str) -> str:
    """Where the hub sends the browser back with a code: oauth_callback under the
    server's prefix ("/user/<name>/", control.manifests.server_url)."""
    return prefix + "oauth_callback"


def access_scopes(user: str, server: str = SERVER_NAME) -> list[str]:
    """Scopes a visitor's token must hold to use the server (Spawner.oauth_access_scopes)."""
    return [f"access:servers!server={user}/{server}", f"access:servers!user={user}"]


def api_url(hub_url: str) -> str:
    """The hub API as pods reach it: the public listener's /hub/api."""
    return hub_url.rstrip("/") + "/hub/api"


def singleuser_env(
    user: str, prefix: str, token: str, hub_url: str, port: int, server: str = SERVER_NAME
) -> dict[str, str]:
    """Every JUPYTERHUB_* variable of one of `user`'s servers, in the order KubeSpawner sets them.

    JUPYTERHUB_SERVICE_URL binds the pod's own address: `$(POD_IP)` is expanded
    by the kubelet from the downward-API variable the manifest defines first.
    """
    scopes = json.dumps(access_scopes(user, server))
    api = api_url(hub_url)
    return {
        API_TOKEN_ENV: token,
        "JUPYTERHUB_CLIENT_ID": client_id(user, server),
        # No subdomains: the browser reaches the hub on the server's own host.
        "JUPYTERHUB_HOST": "",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": callback_url(prefix),
        # The older name (JupyterHub < 3) and the current one, as JupyterHub sets both.
        "JUPYTERHUB_OAUTH_SCOPES": scopes,
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": scopes,
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVER_NAME": server,
        "JUPYTERHUB_API_URL": api,
        "JUPYTERHUB_ACTIVITY_URL": f"{api}/users/{escaped_name(user)}/activity",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://$(POD_IP):{port}{prefix}",
    }


def client_owner(client: str) -> str | None:
    """The user whose server `client` (an OAuth client id) is; None if it names none."""
    if not client.startswith(CLIENT_ID_PREFIX):
        return None
    try:
        user = unquote(client[len(CLIENT_ID_PREFIX) :], errors="strict")
    except UnicodeDecodeError:
        return None
    return user if user and client_id(user) == client else None
