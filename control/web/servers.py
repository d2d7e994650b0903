"""A user's server from the browser: home, start (with a profile), progress page, stop.

GET /hub/spawn/<name> is where the edge sends a signed-in user whose server
is not routed: it shows a Start button (or the profile form, or the failure
of the last try with Retry), or the progress page of a start under way.
Starting and stopping are POSTs with the CSRF token, so no other site can
start servers by linking here; signing in (a POST with the token too)
starts the user's own server when that is where they are headed.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from control.errors import BadProfile, BadServerName, SpawnFailed, SpawnLimitReached
from control.names import check_server_name, normalise_username, server_key, split_key
from control.pages import (
    NamedServerView,
    error_page,
    home_page,
    server_url,
    spawn_failed_page,
    spawn_form_page,
    spawn_pending_page,
    too_many_spawns_page,
)
from control.spawner import ServerStatus
from control.stop_cause import StopCause
from control.web.answers import html, redirect
from control.web.context import Hub, hub_of
from control.web.forms import checked_form, field, xsrf_token
from control.web.next_url import safe_next


def signed_in_viewer(request: web.Request) -> str:
    """The signed-in user of a hub page, or a redirect to the login page is raised."""
    return _viewer(request)


def _viewer(request: web.Request) -> str:
    """The signed-in user, or a redirect to the login page is raised."""
    user = hub_of(request).user(request)
    if user is None:
        if request.method == "GET":
            raise web.HTTPFound(
                f"/hub/login?next={quote(request.path_qs, safe='')}",
                headers={"Cache-Control": "no-store"},
            )
        raise web.HTTPForbidden(text=error_page(403, "Sign in first."), content_type="text/html")
    return user


def _owner(request: web.Request, hub: Hub, viewer: str, server: str | None = None) -> str:
    """The server (its key) the path names: the user in it (the viewer when none), and the
    named server in the path or `server`, if the viewer may act for that user."""
    raw = request.match_info.get("name")
    owner = normalise_username(raw) if raw else viewer
    if not hub.may_act_for(viewer, owner):
        raise web.HTTPForbidden(
            text=error_page(403, "That is another user's server.", user=viewer),
            content_type="text/html",
        )
    named = request.match_info.get("server", server)
    if not named:
        return owner
    if not hub.spawner.settings.named_servers:
        raise web.HTTPNotFound(
            text=error_page(404, "Named servers are not enabled.", user=viewer),
            content_type="text/html",
        )
    try:
        return server_key(owner, check_server_name(named))
    except BadServerName as e:
        raise web.HTTPBadRequest(
            text=error_page(400, str(e), user=viewer), content_type="text/html"
        ) from None


def _key_path(key: str) -> str:
    user, server = split_key(key)
    return quote(user, safe="@") + (f"/{server}" if server else "")


def _spawn_url(owner: str) -> str:
    # The owner's own spawn path, so a form an admin fills for bob starts bob's server.
    return f"/hub/spawn/{_key_path(owner)}"


def pending_url(owner: str, next_url: str) -> str:
    url = f"/hub/spawn-pending/{_key_path(owner)}"
    return f"{url}?next={quote(next_url, safe='')}" if next_url else url


async def home(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    user = _viewer(request)
    status = hub.spawner.status(user)
    named = None
    if hub.spawner.settings.named_servers:
        named = [
            NamedServerView(server, hub.spawner.status(server_key(user, server)).state)
            for server in hub.named_servers(user)
        ]
    page = home_page(
        user,
        xsrf=xsrf_token(request),
        state=status.state,
        reason=status.failure.message if status.failure else None,
        choose_profile=bool(hub.profiles),
        is_admin=hub.access.is_admin(user),
        named=named,
        named_limit=hub.spawner.settings.named_server_limit_per_user,
    )
    return html(page)


def _visit(request: web.Request) -> tuple[Hub, str, str, str, ServerStatus]:
    """(hub, viewer, owner, safe next, owner's server status) of a GET about a server."""
    hub = hub_of(request)
    viewer = _viewer(request)
    next_url = safe_next(request.query.get("next"), "")
    owner = _owner(request, hub, viewer)
    if "server" not in request.match_info:
        owner = named_server_in(hub, owner, next_url)
    return hub, viewer, owner, next_url, hub.spawner.status(owner)


def named_server_in(hub: Hub, owner: str, next_url: str) -> str:
    """The server a path under the owner's prefix is for, as JupyterHub decides: its first
    segment when that is one of the owner's named servers, else the default server (the
    edge sends every unrouted /user/<name>/... here with that path as `next`)."""
    prefix = server_url(owner)
    if not hub.spawner.settings.named_servers or not next_url.startswith(prefix):
        return owner
    segment = next_url[len(prefix) :].split("/", 1)[0].split("?", 1)[0]
    return server_key(owner, segment) if segment in hub.named_servers(owner) else owner


async def spawn_page(request: web.Request) -> web.StreamResponse:
    hub, viewer, owner, next_url, status = _visit(request)
    xsrf = xsrf_token(request)
    if status.state == "running":
        return redirect(next_url or server_url(owner))
    if status.state == "starting":
        return redirect(pending_url(owner, next_url))
    # "stopping" falls through: the new start waits for the old pod to go, and the
    # progress page says so (sending the browser there to wait would only show the
    # old start's "ready" again).
    if status.state == "failed" and status.failure is not None:
        page = spawn_failed_page(
            owner, xsrf=xsrf, message=status.failure.message, next_url=next_url, viewer=viewer
        )
        return html(page, 503)
    # A GET never starts: a link or image on another site could otherwise do it.
    return html(
        spawn_form_page(
            owner,
            profiles=hub.profiles,
            xsrf=xsrf,
            next_url=next_url,
            action=_spawn_url(owner),
        )
    )


async def spawn(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    viewer = _viewer(request)
    form = await checked_form(request)
    # The home page's "new named server" form names the server in a field.
    owner = _owner(request, hub, viewer, field(form, "server_name") or None)
    next_url = safe_next(field(form, "next"), "")
    user, server = split_key(owner)
    if server and server not in hub.named_servers(user):
        limit = hub.spawner.settings.named_server_limit_per_user
        if len(hub.named_servers(user)) >= limit:
            message = (
                f"{user} already has the maximum of {limit} named servers."
                " Delete one before making another."
            )
            raise web.HTTPBadRequest(
                text=error_page(400, message, user=viewer), content_type="text/html"
            )
    if server:
        await hub.remember_server(user, server)  # a KubeError is a 503 page
    return await _start(request, hub, owner, field(form, "profile") or None, next_url)


async def _start(
    request: web.Request,
    hub: Hub,
    owner: str,
    profile: str | None,
    next_url: str,
) -> web.StreamResponse:
    xsrf = xsrf_token(request)
    try:
        await hub.spawner.start(owner, profile)
    except BadProfile as e:
        page = spawn_form_page(
            owner,
            profiles=hub.profiles,
            xsrf=xsrf,
            next_url=next_url,
            action=_spawn_url(owner),
            error=str(e),
        )
        return html(page, 400)
    except SpawnLimitReached as e:
        retry = _spawn_url(owner)
        if next_url:
            retry += f"?next={quote(next_url, safe='')}"
        page = too_many_spawns_page(e.retry_after, retry_url=retry, xsrf=xsrf)
        return html(page, 429, {"Retry-After": str(max(1, round(e.retry_after)))})
    except SpawnFailed as e:
        # The pod could not even be created (the API refused): the failed page, with Retry.
        page = spawn_failed_page(
            owner, xsrf=xsrf, message=e.message, next_url=next_url, viewer=hub.user(request)
        )
        return html(page, 503)
    return redirect(pending_url(owner, next_url), 303)


async def pending(request: web.Request) -> web.StreamResponse:
    hub, viewer, owner, next_url, status = _visit(request)
    xsrf = xsrf_token(request)
    if status.state == "running":
        return redirect(next_url or server_url(owner))
    events = [event.as_json() for event in hub.progress.events(owner)]
    if status.state == "stopped" and not events:
        # Nothing under way (a stale bookmark): the spawn page decides what to do.
        return redirect(_spawn_url(owner))
    page = spawn_pending_page(owner, xsrf=xsrf, events=events, next_url=next_url, viewer=viewer)
    return html(page)


async def stop(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    viewer = _viewer(request)
    await checked_form(request)
    owner = _owner(request, hub, viewer)
    by = "user" if split_key(owner)[0] == viewer else "admin"
    await hub.spawner.stop(owner, StopCause(by, viewer, "stop button"))
    return redirect("/hub/home", 303)


async def delete(request: web.Request) -> web.StreamResponse:
    """POST /hub/delete/<name>/<server>: forget a stopped named server (its claim is kept)."""
    hub = hub_of(request)
    viewer = _viewer(request)
    await checked_form(request)
    key = _owner(request, hub, viewer)
    user, server = split_key(key)
    if server not in hub.named_servers(user):
        raise web.HTTPNotFound(
            text=error_page(404, f"{user} has no server named {server!r}.", user=viewer),
            content_type="text/html",
        )
    if hub.spawner.status(key).state not in ("stopped", "failed"):
        raise web.HTTPBadRequest(
            text=error_page(400, "Stop the server before deleting it.", user=viewer),
            content_type="text/html",
        )
    if hub.records is not None:
        await hub.records.remove_server(user, server)
    return redirect("/hub/home", 303)


async def root(request: web.Request) -> web.StreamResponse:
    user = hub_of(request).user(request)
    return redirect("/hub/home" if user is not None else "/hub/login")
