"""Registers the /hub/api routes on an application: the hub's (public port) or the ops app.

Each handler is wrapped so that it answers JupyterHub's JSON errors on its
own ({"status": ..., "message": ...}), whatever app it is mounted on (the
ops app has none of the hub's middleware). The hub is stored on the app
under HUB_KEY for the handlers; an app that has one keeps it. It never
adds middleware, so it changes nothing else the app serves.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from control.api import servers, singleuser, user_tokens, users
from control.api.callers import ApiError
from control.errors import (
    BadProfile,
    BadServerName,
    BadUserName,
    KubeError,
    SpawnFailed,
    SpawnLimitReached,
)
from control.web import progress_stream
from control.web.answers import json_error
from control.web.context import HUB_KEY, Hub

log = logging.getLogger(__name__)

API = "/hub/api"
# The JupyterHub release whose REST API this one follows; clients check it (the idle
# culler uses the `state` filter from 1.3 on).
JUPYTERHUB_API_VERSION = "6.1.1"

ApiHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answering_errors(handler: ApiHandler) -> ApiHandler:
    """The handler, with ApiError and the control plane's errors answered as JSON."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            return json_error(e.status, e.message, e.headers)
        except (BadUserName, BadProfile, BadServerName) as e:
            return json_error(400, str(e))
        except SpawnLimitReached as e:
            return json_error(429, str(e), {"Retry-After": str(max(1, round(e.retry_after)))})
        except SpawnFailed as e:
            return json_error(503, e.message)
        except KubeError as e:
            log.warning("%s %s: Kubernetes API: %s", request.method, request.path, e)
            return json_error(503, "The cluster is not answering right now. Try again shortly.")

    return wrapped


async def version(request: web.Request) -> web.Response:
    # jupyterhub-singleuser reads the header at start and warns unless the major matches.
    return web.json_response(
        {"version": JUPYTERHUB_API_VERSION},
        headers={"X-JupyterHub-Version": JUPYTERHUB_API_VERSION},
    )


def openapi_text() -> str:
    return resources.files("control.api").joinpath("openapi.yaml").read_text(encoding="utf-8")


async def openapi(request: web.Request) -> web.Response:
    return web.Response(text=openapi_text(), content_type="application/yaml")


# (method, path under /hub/api, handler): the OpenAPI document lists exactly these.
ROUTES: tuple[tuple[str, str, ApiHandler], ...] = (
    ("GET", "/", version),
    ("GET", "/openapi.yaml", openapi),
    ("GET", "/user", users.who_am_i),
    ("GET", "/users", users.list_users),
    ("POST", "/users", users.create_users),
    ("GET", "/users/{name}", users.get_user),
    ("POST", "/users/{name}", users.create_user),
    ("DELETE", "/users/{name}", users.delete_user),
    ("DELETE", "/users/{name}/sessions", users.sign_out_everywhere),
    ("POST", "/users/{name}/activity", singleuser.post_activity),
    ("POST", "/users/{name}/server", servers.start_server),
    ("DELETE", "/users/{name}/server", servers.stop_server),
    ("GET", "/users/{name}/server/progress", progress_stream.progress),
    ("POST", "/users/{name}/servers/{server}", servers.start_named_server),
    ("DELETE", "/users/{name}/servers/{server}", servers.stop_named_server),
    ("GET", "/users/{name}/servers/{server}/progress", progress_stream.progress),
    ("GET", "/users/{name}/tokens", user_tokens.list_tokens),
    ("POST", "/users/{name}/tokens", user_tokens.create_token),
    ("GET", "/users/{name}/tokens/{token_id}", user_tokens.get_token),
    ("DELETE", "/users/{name}/tokens/{token_id}", user_tokens.revoke_token),
)


def add_api_routes(app: web.Application, hub: Hub) -> None:
    """Add every /hub/api route to `app`, which must not have started yet."""
    if HUB_KEY not in app:
        app[HUB_KEY] = hub
    for method, path, handler in ROUTES:
        app.router.add_route(method, API + path, answering_errors(handler))
    # jupyterhub-singleuser checks the version at JUPYTERHUB_API_URL itself, with no slash.
    app.router.add_route("GET", API, answering_errors(version))
