"""Who is asking: the session cookie the edge also reads, and the CSRF binding cookie.

The control plane issues the signed session cookie and the edge verifies it;
both use the codec the wiring hands in (this package never imports the
edge). Cookies are HttpOnly and SameSite=Lax, and Secure when the browser
reached us over TLS (directly, or as a proxy in front says).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web


class SessionLike(Protocol):
    user: str


class SessionCookies(Protocol):
    """What the hub needs from the session codec: issue a value, verify one."""

    def issue(self, user: str) -> str: ...

    def verify(self, value: str) -> SessionLike: ...


@dataclass(frozen=True)
class CookieSettings:
    session_name: str = "podgate-session"
    session_max_age: float = 14 * 24 * 3600.0
    xsrf_name: str = "podgate-xsrf"
    # Names the users who signed in from this browser before (control.auth.known_browsers).
    known_browser_name: str = "podgate-known"


def over_tls(request: web.Request) -> bool:
    # A forged X-Forwarded-Proto only makes the forger's own cookies Secure.
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or proto == "https"


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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


def request_cookies(request: web.Request, name: str) -> list[str]:
    """Every value of cookie `name` the request carries, in order (duplicates happen)."""
    values = []
    for header in request.headers.getall("Cookie", []):
        for part in header.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                values.append(value.strip('"'))
    return values


def session_user(
    request: web.Request, sessions: SessionCookies, settings: CookieSettings
) -> str | None:
    """The user of the first session cookie that verifies, or None."""
    for value in request_cookies(request, settings.session_name):
        try:
            return sessions.verify(value).user
        except Exception:  # any failure to verify is "not logged in", never an error page
            continue
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
        secure=over_tls(request),
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
        secure=over_tls(request),
    )
