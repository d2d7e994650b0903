"""Who is asking: the session cookie the edge also reads, and the CSRF binding cookie.

The control plane issues the signed session cookie and the edge verifies it;
both use the codec the wiring hands in (this package never imports the
edge). Cookies are HttpOnly and SameSite=Lax, and Secure when the browser
reached us over TLS (directly, or as a trusted proxy in front says).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web


class SessionLike(Protocol):
    user: str
    issued: float  # epoch seconds


# Whether a verified session still counts (control.session_gate.SessionGate.admits).
Admits = Callable[[str, float], bool]


class SessionCookies(Protocol):
    """What the hub needs from the session codec: issue a value, verify one."""

    def issue(self, user: str) -> str: ...

    def verify(self, value: str) -> SessionLike: ...


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class CookieSettings:
    session_name: str = "podgate-session"
    session_max_age: float = 14 * 24 * 3600.0
    xsrf_name: str = "podgate-xsrf"
    # Proxies whose X-Forwarded-Proto says whether the browser used TLS (edge.trusted_proxies).
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Names the users who signed in from this browser before (control.auth.known_browsers).
    known_browser_name: str = "podgate-known"
    # The identity-provider sign-in under way in this browser (control.auth.oidc_state).
    sign_in_attempt_name: str = "podgate-oauth-state"


def over_tls(request: web.Request, trusted: Sequence[IPNetwork]) -> bool:
    """Whether the browser reached us over TLS: directly, or as a trusted proxy says.

    Anyone else's X-Forwarded-Proto is the client's own claim and decides nothing,
    as everywhere else in podgate.
    """
    if request.secure:
        return True
    if not trusted or request.remote is None or not _is_trusted(request.remote, trusted):
        return False
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https"


def _is_trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(request: web.Request, trusted: Sequence[IPNetwork] = ()) -> str:
    """The browser's address: the peer, or, behind trusted proxies, the nearest untrusted hop.

    X-Forwarded-For is read right to left and only while each hop is a
    trusted proxy: anything further left was written by the client itself.
    """
    address = request.remote or "unknown"
    if not trusted or not _is_trusted(address, trusted):
        return address
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",")]
    for hop in reversed([h for h in hops if h]):
        address = hop
        if not _is_trusted(hop, trusted):
            break
    return address


# Values of one cookie name looked at per request. A browser sends one, or a
# few when paths or domains differ; each may cost an HMAC (session, CSRF), so a
# request stuffed with thousands gets its first few read and no more. (The edge
# also refuses oversized Cookie headers before the hub sees them.)
MAX_COOKIE_VALUES = 4


def request_cookies(request: web.Request, name: str) -> list[str]:
    """The first MAX_COOKIE_VALUES values of cookie `name` in the request, in order."""
    values: list[str] = []
    for header in request.headers.getall("Cookie", []):
        for part in header.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                values.append(value.strip('"'))
                if len(values) == MAX_COOKIE_VALUES:
                    return values
    return values


def session_user(
    request: web.Request,
    sessions: SessionCookies,
    settings: CookieSettings,
    admits: Admits | None = None,
) -> str | None:
    """The user of the first session cookie that verifies (and that `admits` lets in), or None."""
    for value in request_cookies(request, settings.session_name):
        try:
            session = sessions.verify(value)
        except Exception:  # any failure to verify is "not logged in", never an error page
            continue
        if admits is None or admits(session.user, session.issued):
            return session.user
    return None


def set_session(
    response: web.StreamResponse,
    request: web.Request,
    sessions: SessionCookies,
    settings: CookieSettings,
    user: str,
) -> None:
    response.set_cookie(
        settings.session_name,
        sessions.issue(user),
        path="/",
        max_age=int(settings.session_max_age),
        httponly=True,
        samesite="Lax",
        secure=over_tls(request, settings.trusted_proxies),
    )


def clear_session(response: web.StreamResponse, settings: CookieSettings) -> None:
    response.del_cookie(settings.session_name, path="/")


def set_xsrf_binding(
    response: web.StreamResponse, request: web.Request, settings: CookieSettings, value: str
) -> None:
    # Strict: the binding is only ever needed by our own forms, never on arrival from elsewhere.
    response.set_cookie(
        settings.xsrf_name,
        value,
        path="/hub/",
        httponly=True,
        samesite="Strict",
        secure=over_tls(request, settings.trusted_proxies),
    )
