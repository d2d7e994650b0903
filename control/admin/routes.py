"""The admin panel's handlers: the listing, its live data, confirmation pages and actions.

GET /hub/admin                 the listing (search q, sort, order, running, page)
GET /hub/admin/data            the same query as JSON, with the HTML fragments admin.js swaps in
GET /hub/admin/confirm         "are you sure?" for action=start|stop (user) or stop-idle
POST /hub/admin/start|stop     one user's server (fields: user, back, _xsrf)
POST /hub/admin/stop-idle      every running server idle for idle_minutes or more
POST /hub/admin/sign-out       end every session of one user at every replica (fields as start)

Admins only: signed out, a GET goes to the login page and a POST is
refused; a signed-in user who is not an admin gets 403. Every POST needs
the CSRF token (checked_form). Servers are started and stopped only
through hub.spawner; Kubernetes errors become pages in control_errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import parse_qsl, quote

from aiohttp import web

from control.admin.listing import build_listing, idle_users
from control.admin.usage import PodUsageCache
from control.admin.view import AdminQuery, Listing
from control.errors import BadServerName, BadUserName
from control.names import check_server_name, normalise_username, server_key, split_key
from control.pages import error_page
from control.pages.admin import (
    ADMIN_PATH,
    CONFIRM_PATH,
    DATA_PATH,
    IDLE_CHOICES_MINUTES,
    admin_page,
    confirm_page,
    duration,
    fragments,
)
from control.stop_cause import StopCause
from control.web.answers import html, redirect
from control.web.context import Hub, hub_of
from control.web.forms import checked_form, field, xsrf_token

log = logging.getLogger(__name__)

USAGE_KEY: web.AppKey[PodUsageCache] = web.AppKey("podgate_admin_usage", PodUsageCache)
STOP_CONCURRENCY = 8  # deletes in flight at once for "stop idle"


def add_admin_routes(app: web.Application) -> None:
    """Register the admin panel on the hub app (which holds the Hub under HUB_KEY)."""
    app[USAGE_KEY] = PodUsageCache()
    app.on_cleanup.append(_close_usage)
    router = app.router
    router.add_get(ADMIN_PATH, admin)
    router.add_get(ADMIN_PATH + "/", admin)
    router.add_get(DATA_PATH, admin_data)
    router.add_get(CONFIRM_PATH, confirm)
    router.add_post(ADMIN_PATH + "/start", start)
    router.add_post(ADMIN_PATH + "/stop", stop)
    router.add_post(ADMIN_PATH + "/stop-idle", stop_idle)
    router.add_post(ADMIN_PATH + "/sign-out", sign_out)


async def _close_usage(app: web.Application) -> None:
    await app[USAGE_KEY].close()


def _admin(request: web.Request) -> str:
    """The signed-in admin; otherwise the login page (GET) or a 403 is raised."""
    hub = hub_of(request)
    user = hub.user(request)
    if user is None:
        if request.method == "GET" and request.path != DATA_PATH:
            raise web.HTTPFound(
                f"/hub/login?next={quote(request.path_qs, safe='')}",
                headers={"Cache-Control": "no-store"},
            )
        raise _forbidden("Sign in first.")
    if not hub.access.is_admin(user):
        raise _forbidden("The admin panel is for admins only.", user)
    return user


def _forbidden(message: str, user: str | None = None) -> web.HTTPForbidden:
    return web.HTTPForbidden(text=error_page(403, message, user=user), content_type="text/html")


async def _listing(request: web.Request, hub: Hub, query: AdminQuery) -> Listing:
    settings = hub.spawner.settings
    usage = await request.app[USAGE_KEY].current(hub.spawner.kube, settings.namespace)
    return build_listing(hub, query, usage, time.time())


async def admin(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    viewer = _admin(request)
    listing = await _listing(request, hub, AdminQuery.from_params(request.query))
    page = admin_page(listing, viewer=viewer, xsrf=xsrf_token(request), message=_done(request))
    return html(page)


async def admin_data(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    _admin(request)
    listing = await _listing(request, hub, AdminQuery.from_params(request.query))
    body = {**listing.as_json(), "html": fragments(listing)}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def _done(request: web.Request) -> str | None:
    """What the last action did, from the redirect's query (counts and a checked name only)."""
    done = request.query.get("done")
    if done == "stop-idle":
        stopped = _count(request.query.get("stopped"))
        failed = _count(request.query.get("failed"))
        message = f"Asked {stopped:,} idle server{'s' if stopped != 1 else ''} to stop."
        return message + (f" {failed:,} could not be stopped." if failed else "")
    if done in ("start", "stop", "sign-out"):
        try:
            user = normalise_username(request.query.get("user", ""))
        except BadUserName:
            return None
        if done == "sign-out":
            return f"{user} is signed out everywhere."
        return f"{user}'s server is {'starting' if done == 'start' else 'stopping'}."
    return None


def _count(raw: str | None) -> int:
    return int(raw) if raw is not None and raw.isdigit() and len(raw) < 10 else 0


def _back(raw: str) -> AdminQuery:
    """The listing to return to, rebuilt from its query string (so it is always ours)."""
    return AdminQuery.from_params(dict(parse_qsl(raw.lstrip("?"))))


def _idle_minutes(raw: str | None) -> int:
    minutes = _count(raw)
    if minutes not in IDLE_CHOICES_MINUTES:
        raise web.HTTPBadRequest(
            text=error_page(400, "Choose one of the idle times offered."), content_type="text/html"
        )
    return minutes


async def confirm(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    viewer = _admin(request)
    action = request.query.get("action", "")
    back = _back(request.query.get("back", ""))
    common = {
        "viewer": viewer,
        "xsrf": xsrf_token(request),
        "back": ADMIN_PATH + back.query_string(),
    }
    fields = {"back": back.query_string()}
    if action == "stop-idle":
        minutes = _idle_minutes(request.query.get("idle_minutes"))
        idle = idle_users(hub, minutes * 60, time.time())
        page = confirm_page(
            title="Stop idle servers",
            question=(
                f"{len(idle):,} running server{'s have' if len(idle) != 1 else ' has'} seen no "
                f"traffic for {duration(minutes * 60)} or more. Stop "
                f"{'them' if len(idle) != 1 else 'it'}? Their storage is kept."
            ),
            action=ADMIN_PATH + "/stop-idle",
            fields={**fields, "idle_minutes": str(minutes)},
            button=f"Stop {len(idle):,} idle server{'s' if len(idle) != 1 else ''}",
            users=idle,
            **common,
        )
        return html(page)
    if action in ("start", "stop"):
        user = _server(hub, request.query.get("user", ""))
        verb = "Start" if action == "start" else "Stop"
        state = hub.spawner.status(user).state
        page = confirm_page(
            title=f"{verb} {user}'s server",
            question=(
                f"{user}'s server is {state}. {verb} it?"
                + (" Anything unsaved in it is lost; storage is kept." if action == "stop" else "")
            ),
            action=f"{ADMIN_PATH}/{action}",
            fields={**fields, "user": user},
            button=f"{verb} {user}'s server",
            danger=action == "stop",
            **common,
        )
        return html(page)
    if action == "sign-out":
        user = normalise_username(request.query.get("user", ""))
        page = confirm_page(
            title=f"Sign {user} out everywhere",
            question=(
                f"End every session of {user}, in every browser and at every replica? "
                "Their server keeps running; they can sign in again."
            ),
            action=f"{ADMIN_PATH}/sign-out",
            fields={**fields, "user": user},
            button=f"Sign {user} out everywhere",
            danger=True,
            **common,
        )
        return html(page)
    raise web.HTTPBadRequest(
        text=error_page(400, "There is no such admin action."), content_type="text/html"
    )


def _server(hub: Hub, raw: str) -> str:
    """The server a start/stop names: "<user>", or "<user>/<server>" for a named server
    (a server key, control.names); BadUserName or BadServerName (a 400 page) otherwise."""
    user, slash, server = raw.partition("/")
    if slash and not hub.spawner.settings.named_servers:
        raise BadServerName(f"{raw!r} names a named server, and named servers are not enabled.")
    return server_key(normalise_username(user), check_server_name(server) if slash else "")


def _after(back: AdminQuery, **done: str) -> web.Response:
    params = {**back.params(), **done}
    query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in params.items())
    return redirect(f"{ADMIN_PATH}?{query}", 303)


async def start(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    _admin(request)
    form = await checked_form(request)
    user = _server(hub, field(form, "user"))
    await hub.spawner.start(user)  # a refusal becomes its page in control_errors
    hub.users.remember(split_key(user)[0])
    return _after(_back(field(form, "back")), done="start", user=user)


async def stop(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    _admin(request)
    form = await checked_form(request)
    user = _server(hub, field(form, "user"))
    await hub.spawner.stop(user, StopCause("admin", _admin(request), "admin panel"))
    return _after(_back(field(form, "back")), done="stop", user=user)


async def sign_out(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    _admin(request)
    form = await checked_form(request)
    user = normalise_username(field(form, "user"))
    if hub.records is None:
        raise web.HTTPServiceUnavailable(
            text=error_page(503, "Sessions cannot be ended here."), content_type="text/html"
        )
    await hub.records.sign_out_everywhere(user)  # a KubeError becomes its page
    log.info("admin: %s signed out everywhere", user)
    return _after(_back(field(form, "back")), done="sign-out", user=user)


async def stop_idle(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    _admin(request)
    form = await checked_form(request)
    minutes = _idle_minutes(field(form, "idle_minutes"))
    # Decide from the state now (not the confirm page's list), then stop, a few at a time.
    idle = idle_users(hub, minutes * 60, time.time())
    limit = asyncio.Semaphore(STOP_CONCURRENCY)

    cause = StopCause("admin", _admin(request), f"stop all idle for {minutes} minutes")

    async def stop_one(user: str) -> None:
        async with limit:
            await hub.spawner.stop(user, cause)

    results = await asyncio.gather(*(stop_one(u) for u in idle), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        log.warning(
            "admin: %d of %d idle servers not stopped: %s", len(errors), len(idle), errors[0]
        )
    failed = len(errors)
    return _after(
        _back(field(form, "back")),
        done="stop-idle",
        stopped=str(len(idle) - failed),
        failed=str(failed),
    )
