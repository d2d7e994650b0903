"""Sign in and sign out: the login form, password check, throttle, and the session cookie."""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import quote

from aiohttp import web

from control.auth.sign_in_errors import SignInFailed
from control.errors import BadUserName, ControlError, KubeError
from control.pages import (
    INVALID_LOGIN,
    logged_out_page,
    login_page,
    redirect_login_page,
    throttled_message,
)
from control.pages import server_url as user_server_url
from control.pages.sign_out import sign_out_page
from control.web.answers import html, redirect
from control.web.context import Hub, hub_of
from control.web.forms import checked_form, field, xsrf_token
from control.web.identity import clear_session, over_tls, request_cookies, set_session
from control.web.next_url import safe_next
from control.web.servers import named_server_in, pending_url

log = logging.getLogger(__name__)

# Where an identity-provider sign-in starts (control.web.oidc_login).
OAUTH_START = "/hub/oauth_login"
NOT_ALLOWED = "This account may not use this service. Ask an administrator for access."
# Longest wait for a sign-out's second to pass (more means the replicas' clocks disagree).
MAX_SIGN_OUT_WAIT = 1.5
# Longest a slow Kubernetes API may hold a sign-in (for the record) or a sign-out (for
# ending the other sessions); past it the write is given up and logged.
SIGN_IN_RECORD_SECONDS = 2.0
SIGN_OUT_RECORD_SECONDS = 5.0


def next_for(user: str, requested: str) -> str:
    # By default a user lands in their server; the edge starts it when it is not running.
    return safe_next(requested, user_server_url(user))


async def login_form(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    user = hub.user(request)
    requested = request.query.get("next", "")
    if user is not None:
        return redirect(next_for(user, requested))
    if hub.redirect_login is not None:  # one button to the identity provider, no form
        page = redirect_login_page(
            provider=hub.redirect_login.display_name,
            start_url=start_url(safe_next(requested, "")),
        )
        return html(page)
    page = login_page(
        xsrf=xsrf_token(request),
        next_url=safe_next(requested, ""),
        hint=hub.authenticator.login_hint,
    )
    return html(page)


def start_url(next_url: str) -> str:
    """The path that starts an identity-provider sign-in (control.web.oidc_login)."""
    return f"{OAUTH_START}?next={quote(next_url, safe='/')}" if next_url else OAUTH_START


async def login(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    form = await checked_form(request)
    if hub.redirect_login is not None:  # no passwords: back to the provider's button
        return redirect("/hub/login", 303)
    username, password = field(form, "username"), field(form, "password")
    requested = safe_next(field(form, "next"), "")
    address = hub.client_address(request)
    began = time.monotonic()

    def observed(status: str) -> None:
        # Metrics hook (Hub.on_login): every outcome, throttled ones included.
        if hub.on_login is not None:
            hub.on_login(status, time.monotonic() - began)

    def again(status: int, error: str, headers: dict[str, str] | None = None) -> web.Response:
        page = login_page(
            xsrf=xsrf_token(request),
            next_url=requested,
            username=username[:200],
            error=error,
            hint=hub.authenticator.login_hint,
        )
        return html(page, status, headers)

    known = hub.known_browsers.users(request_cookies(request, hub.cookies.known_browser_name))
    known_browser = hub.throttle.same_user(username, known)
    wait = hub.throttle.delay(username, address, known_browser=known_browser)
    if wait > 0:
        observed("throttled")
        return again(429, throttled_message(wait), {"Retry-After": str(max(1, round(wait)))})
    try:
        user = await hub.authenticator.authenticate(username, password)
    except BadUserName as e:
        hub.throttle.failed(username, address)
        observed("failure")
        return again(403, str(e))
    if user is None:
        hub.throttle.failed(username, address)
        observed("failure")
        log.info("login failed for %r from %s", username[:64], address)
        return again(403, INVALID_LOGIN)
    if not hub.access.is_allowed(user):
        hub.throttle.failed(username, address)
        observed("failure")
        log.info("login refused for %s from %s: not an allowed user", user, address)
        return again(403, NOT_ALLOWED)
    hub.throttle.succeeded(username, address)
    hub.users.remember(user)
    await record_sign_in(hub, user)
    observed("success")
    log.info("login %s from %s (%.0f ms)", user, address, (time.monotonic() - began) * 1000)
    destination = next_for(user, requested)
    if await start_on_the_way(hub, user, destination):
        destination = pending_url(user, destination)
    response = redirect(destination, 303)
    set_session(response, request, hub.sessions, hub.cookies, user)
    response.set_cookie(
        hub.cookies.known_browser_name,
        hub.known_browsers.issue(user, known),
        path="/hub/",  # only the login form reads it; never sent to a user's server
        max_age=int(hub.known_browsers.max_age_seconds),
        httponly=True,
        samesite="Lax",
        secure=over_tls(request, hub.cookies.trusted_proxies),
    )
    return response


async def record_sign_in(hub: Hub, user: str, data: dict[str, str | None] | None = None) -> None:
    """Write the user's record (so every replica lists them), after any sign-out's second.

    `data`: more for the record (the groups an identity provider said).
    """
    records = hub.records
    if records is None:
        return
    # Cookies carry whole-second issue times: one issued in the second of a sign-out
    # everywhere would be refused with the sessions it ended, so wait that second out.
    wait = records.not_before(user) - time.time()
    if wait > 0:
        await asyncio.sleep(min(wait, MAX_SIGN_OUT_WAIT))
    try:
        async with asyncio.timeout(SIGN_IN_RECORD_SECONDS):
            await records.signed_in(user, data=data)
    except (KubeError, TimeoutError) as e:  # the sign-in itself needs no record: let them in
        log.warning("login %s: their user record was not written: %r", user, e)


async def start_on_the_way(hub: Hub, user: str, destination: str) -> bool:
    """Start the user's server when signing in leads into it (a POST with the form token).

    GET /hub/spawn only offers a Start button, so without this every sign-in
    would stop there; with profiles to choose from, the user chooses there.
    True when a start is under way; any refusal is left for the spawn page to explain.
    """
    if hub.profiles or not destination.startswith(user_server_url(user)):
        return False
    if named_server_in(hub, user, destination) != user:
        return False  # headed into one of their named servers, not the default one
    if hub.spawner.status(user).state != "stopped":
        return False
    try:
        await hub.spawner.start(user)
    except ControlError:
        return False
    return True


async def logout_page(request: web.Request) -> web.StreamResponse:
    # Signing out is a POST (the header's button); a GET only shows where one stands:
    # signed in, a page whose one button signs out (JupyterLab's File → Log Out).
    user = hub_of(request).user(request)
    if user is not None:
        return html(sign_out_page(user, xsrf=xsrf_token(request)))
    response = html(logged_out_page())
    clear_session(response, hub_of(request).cookies)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """Sign out: this browser's cookie goes, and every session of the user ends at every
    replica (JupyterHub's logout ends all of a user's sessions too). With an identity
    provider and end_session, the browser then goes on to end the provider's session."""
    await checked_form(request)
    hub = hub_of(request)
    user = hub.user(request)
    response = redirect(await _after_logout(request, hub), 303)
    clear_session(response, hub.cookies)
    if user is not None and hub.records is not None:
        try:
            async with asyncio.timeout(SIGN_OUT_RECORD_SECONDS):
                await hub.records.sign_out_everywhere(
                    user, forget_refresh=hub.redirect_login is not None
                )
        except (KubeError, TimeoutError) as e:
            # The browser's cookie is gone all the same; a copy of it would still work.
            log.warning("logout %s: other sessions not ended, the record failed: %s", user, e)
        else:
            log.info("logout %s: every session ended", user)
    return response


async def _after_logout(request: web.Request, hub: Hub) -> str:
    """/hub/logout, or the provider's end_session_endpoint (RP-initiated logout)."""
    login = hub.redirect_login
    if login is None or not login.settings.end_session:
        return "/hub/logout"
    scheme = "https" if over_tls(request, hub.cookies.trusted_proxies) else "http"
    after = login.settings.logout_redirect or f"{scheme}://{request.host}/hub/logout"
    try:
        url = await login.end_session_url(None, after)
    except SignInFailed as e:  # provider down: podgate's own sign-out still happens
        log.warning("logout: the provider's session was not ended: %s", e.reason)
        return "/hub/logout"
    return url or "/hub/logout"
