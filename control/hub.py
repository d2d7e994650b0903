"""The control plane's aiohttp Application: every /hub/ path a browser or script uses.

The wiring builds a Hub (control.web.context) and hands the app to the edge,
which serves it on the public port behind its own middleware. Form bodies
are capped small: nothing under /hub/ needs more than a few kilobytes. A
request takes an admission place only once its body has arrived
(control.web.body_arrival): a slow client never holds the hub. Both sit
inside security_headers, so their refusals are hardened pages too.
"""

from __future__ import annotations

from aiohttp import web

from control.admin.routes import add_admin_routes
from control.api.page_fetch import page_fetch_guard
from control.api.routes import add_api_routes
from control.pages import add_static_routes, security_headers
from control.web import login, oidc_login, servers, tokens
from control.web.admission import admission
from control.web.answers import control_errors
from control.web.body_arrival import BodyArrival, BodyLimits
from control.web.context import HUB_KEY, Hub
from control.web.forms import xsrf_binding
from control.web.oauth import add_oauth_routes

MAX_FORM_BYTES = 64 * 1024


def build_hub(hub: Hub, body_limits: BodyLimits | None = None) -> web.Application:
    app = web.Application(
        client_max_size=MAX_FORM_BYTES,
        middlewares=[
            page_fetch_guard,
            security_headers,
            xsrf_binding,
            BodyArrival(body_limits or BodyLimits()),
            admission(),
            control_errors,
        ],
    )
    app[HUB_KEY] = hub
    router = app.router
    for path in ("/", "/hub", "/hub/"):
        router.add_get(path, servers.root)
    router.add_get("/hub/login", login.login_form)
    router.add_post("/hub/login", login.login)
    router.add_get(oidc_login.START, oidc_login.start)
    router.add_get(oidc_login.CALLBACK, oidc_login.callback)
    router.add_get("/hub/logout", login.logout_page)
    router.add_post("/hub/logout", login.logout)
    router.add_get("/hub/home", servers.home)
    router.add_get("/hub/spawn", servers.spawn_page)
    router.add_post("/hub/spawn", servers.spawn)
    router.add_get("/hub/spawn/{name}", servers.spawn_page)
    router.add_post("/hub/spawn/{name}", servers.spawn)
    router.add_get("/hub/spawn-pending/{name}", servers.pending)
    router.add_post("/hub/stop", servers.stop)
    router.add_post("/hub/stop/{name}", servers.stop)
    # Named servers (spawner.named_server_limit_per_user), JupyterHub's paths.
    router.add_get("/hub/spawn/{name}/{server}", servers.spawn_page)
    router.add_post("/hub/spawn/{name}/{server}", servers.spawn)
    router.add_get("/hub/spawn-pending/{name}/{server}", servers.pending)
    router.add_post("/hub/stop/{name}/{server}", servers.stop)
    router.add_post("/hub/delete/{name}/{server}", servers.delete)
    router.add_get("/hub/token", tokens.token_form)
    router.add_post("/hub/token", tokens.make_token)
    router.add_post("/hub/token/{token_id}/revoke", tokens.revoke_token)
    add_api_routes(app, hub)  # /hub/api, the progress stream included
    add_oauth_routes(app)  # jupyterhub-singleuser's OAuth flow: public port only
    add_admin_routes(app)  # /hub/admin
    add_static_routes(app)
    app.on_shutdown.append(_end_progress_streams)
    return app


async def _end_progress_streams(app: web.Application) -> None:
    # The drain waits for open requests: a progress page left open must not hold it.
    app[HUB_KEY].progress.close()
