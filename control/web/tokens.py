"""GET/POST /hub/token: the signed-in user's personal API tokens, in the browser.

The same rules as the REST API (control.api.user_tokens.check_request):
scopes the user holds only, an expiry from the offered list or none.
Making and revoking are POSTs with the CSRF token; a failure to write the
user's record is a 503 page that says nothing was made or revoked.
"""

from __future__ import annotations

from aiohttp import web

from control.api.callers import ApiError, own_scopes
from control.api.user_tokens import check_request
from control.errors import KubeError
from control.pages import error_page
from control.pages.tokens import EXPIRIES, token_page
from control.user_tokens import UserTokens
from control.web.answers import html, redirect
from control.web.context import Hub, hub_of
from control.web.forms import checked_form, field, xsrf_token
from control.web.servers import signed_in_viewer


def _store(hub: Hub, user: str) -> UserTokens:
    if hub.user_tokens is None:
        raise web.HTTPNotFound(
            text=error_page(404, "Personal API tokens are not available here.", user=user),
            content_type="text/html",
        )
    return hub.user_tokens


def _page(
    request: web.Request,
    hub: Hub,
    user: str,
    *,
    new_token: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    names, _, _ = own_scopes(hub, user)
    page = token_page(
        user,
        xsrf=xsrf_token(request),
        tokens=_store(hub, user).of_user(user),
        scopes=names,
        now=hub.clock(),
        new_token=new_token,
        error=error,
    )
    # The page may hold a secret: never cached, never kept by a shared cache.
    return html(page, status, {"Cache-Control": "no-store"})


async def token_form(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    return _page(request, hub, signed_in_viewer(request))


async def make_token(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    user = signed_in_viewer(request)
    form = await checked_form(request)
    store = _store(hub, user)
    expires = field(form, "expires_in")
    if expires not in {value for value, _ in EXPIRIES}:
        return _page(request, hub, user, error="Choose an expiry from the list.", status=400)
    scopes = [s for s in form.getall("scopes", []) if isinstance(s, str)]
    if not scopes:
        return _page(request, hub, user, error="Choose at least one scope.", status=400)
    body = {"note": field(form, "note") or None, "scopes": scopes}
    body["expires_in"] = int(expires) if expires else None
    try:
        note, granted, expires_in = check_request(hub, user, body)
        secret, _ = await store.create(
            user, note=note, scopes=granted, expires_in=expires_in, now=hub.clock()
        )
    except ApiError as e:
        return _page(request, hub, user, error=e.message, status=e.status)
    except KubeError:
        message = "The cluster is not answering: no token was made. Try again shortly."
        return _page(request, hub, user, error=message, status=503)
    return _page(request, hub, user, new_token=secret, status=201)


async def revoke_token(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    user = signed_in_viewer(request)
    await checked_form(request)
    store = _store(hub, user)
    token_id = request.match_info["token_id"]
    if store.get(user, token_id) is None:
        return _page(request, hub, user, error="There is no such token.", status=404)
    try:
        await store.revoke(user, token_id, hub.clock())
    except KubeError:
        message = "The cluster is not answering: the token was not revoked. Try again shortly."
        return _page(request, hub, user, error=message, status=503)
    return redirect("/hub/token", 303)
