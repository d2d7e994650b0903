"""Sign in at an identity provider (auth.kind oidc): the button, the start, the callback.

GET /hub/oauth_login sets the attempt cookie and sends the browser to the
provider; the provider sends it back to GET /hub/oauth_callback (the
paths JupyterHub's OAuthenticator uses, so a provider registration made
for JupyterHub keeps working). Any replica answers either: the attempt
travels in the signed cookie, which the callback always clears. A failure
lands on a page saying what went wrong, with a "Try again" link; it is
logged at INFO (WARNING when the provider is down or slow), never ERROR.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from control.auth.oidc import OidcLogin, SignedIn
from control.auth.oidc_state import MAX_AGE_SECONDS
from control.auth.sign_in_errors import NOT_ALLOWED, SignInFailed
from control.pages import sign_in_failed_page
from control.user_records import groups_data
from control.web.answers import html, redirect
from control.web.context import Hub, hub_of
from control.web.identity import over_tls, request_cookies, set_session
from control.web.login import OAUTH_START, next_for, record_sign_in, start_on_the_way, start_url
from control.web.next_url import safe_next
from control.web.servers import pending_url

log = logging.getLogger(__name__)

GROUPS_UNRECORDED = (
    "You are allowed in, but podgate could not record your groups just now (its "
    "cluster is not answering). Try again in a moment."
)

START = OAUTH_START
CALLBACK = "/hub/oauth_callback"


def redirect_uri(request: web.Request, hub: Hub, login: OidcLogin) -> str:
    """Where the provider sends the browser back: the configured URL, or this host's callback."""
    if login.settings.redirect_url:
        return login.settings.redirect_url
    scheme = "https" if over_tls(request, hub.cookies.trusted_proxies) else "http"
    return f"{scheme}://{request.host}{CALLBACK}"


def _failed(login: OidcLogin, error: SignInFailed, next_url: str = "") -> web.Response:
    level = logging.WARNING if error.reason in ("provider_down", "provider_slow") else logging.INFO
    log.log(level, "sign-in at %s failed: %s", login.display_name, error.reason)
    page = sign_in_failed_page(
        message=error.message, retry_url=start_url(next_url), provider=login.display_name
    )
    return html(page, error.status)


async def start(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    login = hub.redirect_login
    if login is None:
        raise web.HTTPNotFound()
    requested = _safe(request.query.get("next", ""))
    user = hub.user(request)
    if user is not None:
        return redirect(next_for(user, requested))
    try:
        url, cookie = await login.start(requested, redirect_uri(request, hub, login))
    except SignInFailed as e:
        return _failed(login, e, requested)
    response = web.Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})
    response.set_cookie(
        hub.cookies.sign_in_attempt_name,
        cookie,
        path=CALLBACK,  # sent back only to the callback
        max_age=MAX_AGE_SECONDS,
        httponly=True,
        samesite="Lax",  # a top-level GET back from the provider carries it
        secure=over_tls(request, hub.cookies.trusted_proxies),
    )
    return response


async def callback(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    login = hub.redirect_login
    if login is None:
        raise web.HTTPNotFound()
    began = time.monotonic()
    values = request_cookies(request, hub.cookies.sign_in_attempt_name)
    try:
        signed = await login.finish(request.query, values, redirect_uri(request, hub, login))
        try:
            if not hub.access.is_allowed(signed.user, signed.groups):
                raise SignInFailed("not_allowed", NOT_ALLOWED)
            response = await _signed_in(request, hub, login, signed)
        except SignInFailed as e:
            e.next_url = signed.next_url
            raise
    except SignInFailed as e:
        _observed(hub, "failure", began)
        response = _failed(login, e, e.next_url)
    else:
        _observed(hub, "success", began)
        log.info(
            "login %s from %s at %s (%.0f ms)",
            signed.user,
            hub.client_address(request),
            login.display_name,
            (time.monotonic() - began) * 1000,
        )
    # One attempt, one callback: whatever happened, this attempt is over.
    response.del_cookie(hub.cookies.sign_in_attempt_name, path=CALLBACK)
    return response


async def _signed_in(
    request: web.Request, hub: Hub, login: OidcLogin, signed: SignedIn
) -> web.StreamResponse:
    hub.users.remember(signed.user)
    refresh = None
    if signed.refresh_token and login.settings.refresh_seconds > 0:
        refresh = login.sealer.seal(signed.refresh_token)
    await record_sign_in(hub, signed.user, groups_data(signed.groups, time.time(), refresh))
    if not hub.access.is_allowed(signed.user):
        # Allowed by groups that could not be written to the record: every request would
        # bounce back to the login page, so say what happened instead.
        raise SignInFailed("groups_unrecorded", GROUPS_UNRECORDED, 503)
    destination = next_for(signed.user, signed.next_url)
    if await start_on_the_way(hub, signed.user, destination):
        destination = pending_url(signed.user, destination)
    response = redirect(destination, 302)
    set_session(response, request, hub.sessions, hub.cookies, signed.user)
    return response


def _observed(hub: Hub, status: str, began: float) -> None:
    if hub.on_login is not None:
        hub.on_login(status, time.monotonic() - began)


def _safe(value: str) -> str:
    return safe_next(value, "")
