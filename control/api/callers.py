"""Who is calling /hub/api, with which scopes, and the checks every handler makes.

Three kinds of caller:
- an API token (`Authorization: token …` or `Bearer …`): the scopes it was
  configured with, over every user;
- a personal API token a user made (control.user_tokens), in the same
  header: that user, with the token's scopes that the user still holds;
- a browser with the session cookie: the user's own scopes over their own
  name and server (admins: everything) — and only with the XSRF token in an
  `X-XSRFToken` header. `_xsrf` in the query counts only where an
  EventSource needs it (it cannot set headers): the progress stream, asked
  for as a GET with `Accept: text/event-stream`. Anywhere else a token in a
  URL would only end up in logs and Referer headers. The token is the one the hub's forms carry
  (CsrfTokens, bound to the browser's XSRF cookie and to the user).

Why a page served by a user's pod, on the same origin, cannot act on
/hub/api with the visitor's cookie:
- The cookie alone is not enough: every cookie call needs the XSRF token,
  and the pod's page cannot make one (server secret) or read one.
- The pod cannot read the cookies (HttpOnly), and the edge strips the
  session cookie from requests to pods, so the pod never sees it.
- The token is only found in hub HTML pages, and those are not readable by
  pod scripts: a hub page GET whose `Sec-Fetch-Dest` is present and not
  `document` (a fetch/XHR, iframe, script... from any page) is refused
  (control.api.page_fetch); frames are refused (X-Frame-Options,
  frame-ancestors); a window the pod opens onto /hub/ is severed from its
  opener (Cross-Origin-Opener-Policy: same-origin), so the pod's script
  cannot reach its DOM. A service worker of a pod is scoped to /user/<name>/
  and cannot intercept /hub/.
Residual risk: a browser that sends no Fetch Metadata headers (very old
ones) lets a same-origin fetch read a hub page; podgate cannot tell that
request from a navigation.

Nothing here answers a request: it raises ApiError, which the handler
wrapper (control.api.routes) turns into JupyterHub's JSON error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from control.api.scopes import OWN_SCOPES, expand
from control.web.context import Hub
from control.web.identity import request_cookies

XSRF_HEADER = "X-XSRFToken"
XSRF_QUERY = "_xsrf"

ALL_SCOPES = expand(["admin"])


class ApiError(Exception):
    """An API answer other than success: status, message, and headers (Retry-After...)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class Caller:
    """An authenticated API caller."""

    name: str
    kind: Literal["user", "service"]
    scopes: frozenset[str]
    # A signed-in non-admin user: their scopes reach only their own name and server.
    only: str | None = None
    configured_scopes: tuple[str, ...] = ()
    # A personal API token's id (control.user_tokens): the user acting through it.
    token_id: str | None = None

    def listed_scopes(self) -> list[str]:
        """The scopes as JupyterHub lists a token's: filtered to the user where they reach
        only their own (so a server that checks `access:servers!server=<u>/<s>` admits
        exactly what the edge would)."""
        if self.only is None:
            return sorted(self.scopes)
        return sorted(f"{scope}!user={self.only}" for scope in self.scopes)

    def sees(self, user: str) -> bool:
        return self.only is None or self.only == user

    def may(self, scope: str, user: str | None = None) -> bool:
        return scope in self.scopes and (user is None or self.sees(user))


def require(caller: Caller, scopes: Iterable[str], user: str | None = None) -> None:
    """403 unless the caller holds one of `scopes` (over `user`, when one is named).

    Checked before looking the user up, as JupyterHub does: the answer does
    not tell a caller without the scope whether the user exists.
    """
    wanted = list(scopes)
    held = any(scope in caller.scopes for scope in wanted)
    if not held or (user is not None and not caller.sees(user)):
        raise ApiError(
            403, f"Action is not authorized with current scopes; requires any of {wanted}"
        )


def presented_token(request: web.Request) -> str | None:
    """The token of an `Authorization: token …` / `Bearer …` header, "" for another scheme."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() not in ("token", "bearer"):
        return ""
    return value.strip()


def caller_of(
    request: web.Request, hub: Hub, *, require_xsrf: bool = True, event_stream: bool = False
) -> Caller:
    """The caller of this request, or ApiError 403 (no, bad or unchecked credentials).

    `require_xsrf=False` lets a cookie call through without the XSRF token:
    only for reading that changes nothing. `event_stream=True` (the progress
    stream only) also takes the token from `?_xsrf=` when an EventSource asks.
    """
    token = presented_token(request)
    if token is not None:
        owner = hub.api_tokens.owner(token)
        if owner is not None:
            return Caller(owner.name, "service", owner.scopes, None, owner.configured_scopes)
        personal = personal_caller(hub, token)
        if personal is None:
            raise ApiError(403, "Invalid or unknown API token")
        return personal
    user = hub.user(request)
    if user is None:
        raise ApiError(403, "Missing or invalid credentials: send an API token")
    admin = hub.access.is_admin(user)
    caller = Caller(
        user,
        "user",
        ALL_SCOPES if admin else expand(OWN_SCOPES),
        None if admin else user,
        ("admin",) if admin else OWN_SCOPES,
    )
    if not require_xsrf or xsrf_ok(request, hub, user, in_query=event_stream):
        return caller
    raise ApiError(
        403, f"XSRF token missing or wrong: send the {XSRF_HEADER} header a hub page gives"
    )


def own_scopes(hub: Hub, user: str) -> tuple[tuple[str, ...], frozenset[str], str | None]:
    """(scope names, expanded, `only`) a user holds now: an admin's reach everyone."""
    if hub.access.is_admin(user):
        return ("admin",), ALL_SCOPES, None
    return OWN_SCOPES, expand(OWN_SCOPES), user


def personal_caller(hub: Hub, token: str) -> Caller | None:
    """The user a personal API token (control.user_tokens) acts for, with exactly its scopes
    that the user still holds; None when it is no such token; ApiError 403 when it was
    one that can no longer be used (expired, or its user may no longer sign in)."""
    tokens = hub.user_tokens
    found = tokens.find(token) if tokens is not None else None
    if found is None:
        return None
    if found.expired(hub.clock()):
        raise ApiError(403, "This API token has expired: make a new one at /hub/token")
    record = hub.records.get(found.user) if hub.records is not None else None
    if not hub.access.is_allowed(found.user) or (record is not None and record.removed):
        raise ApiError(403, f"This API token's user ({found.user}) may no longer sign in")
    _, held, only = own_scopes(hub, found.user)
    # A token never holds more than its user does now (an admin who is no longer one...).
    scopes = expand(found.scopes) & held
    return Caller(found.user, "user", frozenset(scopes), only, found.scopes, found.id)


def xsrf_ok(request: web.Request, hub: Hub, user: str, *, in_query: bool = False) -> bool:
    """Whether the request carries this browser's XSRF token for `user`.

    In the X-XSRFToken header; with `in_query`, also in `?_xsrf=` of an
    EventSource's request (a GET accepting text/event-stream).
    """
    token = request.headers.get(XSRF_HEADER)
    if not token and in_query and _from_event_source(request):
        token = request.query.get(XSRF_QUERY)
    if not token:
        return False
    bindings = request_cookies(request, hub.cookies.xsrf_name)
    return any(hub.csrf.check(binding, token, user) for binding in bindings)


def _from_event_source(request: web.Request) -> bool:
    # What an EventSource sends; a form, a link or fetch() of a page does not ask for this.
    return request.method == "GET" and "text/event-stream" in request.headers.get("Accept", "")
