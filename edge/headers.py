"""Header rules between the browser and a pod, applied in one pass each way.

Requests: hop-by-hop headers (and those the Connection header names) go,
except the ones that frame or address the message (FRAMING): a Connection
header naming one of those is refused by the edge before this runs, and this
never drops them either, so framing decided from the head stays decided;
X-Forwarded-For/-Proto/-Host/-Port are set (appended to only for trusted
proxies), Host is kept, the podgate session cookie is cut out of Cookie, and
the pod's own token is added. Responses: hop-by-hop headers go, and a
Set-Cookie for any of podgate's own cookie names (EdgeSettings.reserved_cookies:
the session, the hub's CSRF cookie) is dropped so a pod can never set or clear
them. Cookies are bounded before anything reads
them (cookies_within_limits, MAX_SESSION_VALUES), so a request stuffed with
session values costs a bounded amount of work. Pure functions: no I/O, never
reads a body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from multidict import CIMultiDict, CIMultiDictProxy

from edge.settings import EdgeSettings

# Header lines each ending in CRLF, as both lanes' strict parsers accept them: token
# names, values of visible ASCII, SP, HTAB and obs-text only (no CR, LF, NUL or other
# controls). A line starting with whitespace (obs-fold) fails. Possessive
# quantifiers: nothing to backtrack into, a little faster.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]++"
FIELD_LINES = re.compile(rb"(?:" + _TOKEN + rb":[\t\x20-\x7e\x80-\xff]*+\r\n)*+")

# RFC 9110 section 7.6.1 plus the legacy ones proxies have always dropped.
# Expect is answered by the edge itself (100 Continue), so it never goes upstream.
HOP_BY_HOP: frozenset[str] = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    )
)
# What delimits or addresses a message. A Connection header may not name these:
# dropping one as hop-by-hop would let a body be read as the next request.
FRAMING: frozenset[str] = frozenset(("content-length", "transfer-encoding", "host"))
# Lower-case names: headers are compared by name.lower() (istr hashes keep their case).
_FORWARDED = frozenset(
    ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port")
)
_COOKIE = "cookie"

# A browser speaking HTTP/1.1 sends one Cookie header, each at most aiohttp's
# 8190-byte field limit; a proxy turning HTTP/2 cookie crumbs into lines sends
# a few. More lines or bytes than this is not a browser: refused (431) before
# any value is split out or verified.
MAX_COOKIE_HEADERS = 16
MAX_COOKIE_BYTES = 16384
# Session values considered per request: a browser sends one, or a few when
# cookies of several paths or domains share the name. Each one not seen before
# costs a signature check, so a request carrying thousands gets its first few
# looked at and no more.
MAX_SESSION_VALUES = 4
_CONNECTION = "connection"
_SET_COOKIE = "set-cookie"


def connection_listed(headers: CIMultiDictProxy[str]) -> frozenset[str]:
    """Extra hop-by-hop names a Connection header lists ("close" and the like included)."""
    values = headers.getall(_CONNECTION, ())
    if not values:
        return frozenset()
    return frozenset(
        token.strip().lower() for value in values for token in value.split(",") if token.strip()
    )


def framing_named(connection_values: Iterable[str]) -> str | None:
    """The first FRAMING name these Connection header values list, or None."""
    for value in connection_values:
        for token in value.split(","):
            name = token.strip(" \t").lower()
            if name in FRAMING:
                return name
    return None


def sets_reserved_cookie(set_cookie: str, names: frozenset[str]) -> bool:
    """Whether a pod's Set-Cookie would come back from the browser under one of `names`.

    Judged by what the browser sends back, not by the literal name: a nameless
    cookie ``=podgate-session=x`` is sent back as ``podgate-session=x``.
    """
    pair = set_cookie.split(";", 1)[0]
    name, has_equals, value = pair.partition("=")
    name = name.strip(" \t")
    if name in names:
        return True
    if name and has_equals:
        return False
    sent = value if has_equals else pair  # nameless: the browser sends the value alone
    return sent.partition("=")[0].strip(" \t") in names


def strip_session_cookie(value: str, cookie_name: str) -> str:
    """The Cookie header value without the session cookie; "" when nothing else is left."""
    if cookie_name not in value:
        return value
    kept = [
        part.strip()
        for part in value.split(";")
        if part.strip() and part.split("=", 1)[0].strip() != cookie_name
    ]
    return "; ".join(kept)


def cookies_within_limits(cookie_headers: Sequence[str]) -> bool:
    """Whether these Cookie header values are few and small enough to be read at all."""
    return len(cookie_headers) <= MAX_COOKIE_HEADERS and (
        sum(map(len, cookie_headers)) <= MAX_COOKIE_BYTES
    )


def session_cookie_values(headers: CIMultiDictProxy[str], cookie_name: str) -> list[str]:
    """The first MAX_SESSION_VALUES values the request carries for the session cookie."""
    return session_values(headers.getall(_COOKIE, ()), cookie_name)


def session_values(cookie_headers: Iterable[str], cookie_name: str) -> list[str]:
    """The first MAX_SESSION_VALUES session values in these Cookie header values, in order."""
    found: list[str] = []
    for header in cookie_headers:
        if cookie_name not in header:
            continue
        for part in header.split(";"):
            name, sep, value = part.partition("=")
            if sep and name.strip() == cookie_name:
                found.append(value.strip().strip('"'))
                if len(found) == MAX_SESSION_VALUES:
                    return found
    return found


def upstream_request_headers(
    incoming: CIMultiDictProxy[str],
    *,
    peer: str | None,
    scheme: str,
    settings: EdgeSettings,
    pod_token: str | None,
) -> CIMultiDict[str]:
    """The headers to send to the pod for a request that arrived with `incoming`."""
    drop = (
        HOP_BY_HOP | (connection_listed(incoming) - FRAMING)
        if _CONNECTION in incoming
        else HOP_BY_HOP
    )
    trusted = settings.is_trusted_proxy(peer)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        lower = name.lower()
        if lower in drop:
            continue
        if lower in _FORWARDED and not trusted:
            continue  # an untrusted client may not claim where it came from
        if lower == _COOKIE:
            value = strip_session_cookie(value, settings.cookie_name)
            if not value:
                continue
        out.add(name, value)

    client = peer or ""
    prior = out.popall("X-Forwarded-For", ()) if trusted else ()
    out["X-Forwarded-For"] = ", ".join([*prior, client]) if prior else client
    host = incoming.get("Host", "")
    if "X-Forwarded-Proto" not in out:
        out["X-Forwarded-Proto"] = scheme
    if "X-Forwarded-Host" not in out and host:
        out["X-Forwarded-Host"] = host
    if "X-Forwarded-Port" not in out:
        out["X-Forwarded-Port"] = forwarded_port(host, scheme)
    if pod_token:
        out[settings.pod_token_header] = f"{settings.pod_token_scheme} {pod_token}"
    return out


def forwarded_port(host: str, scheme: str) -> str:
    """The X-Forwarded-Port for a Host header value: its port, else the scheme's default."""
    if host and not host.endswith("]"):
        _, sep, port = host.rpartition(":")
        if sep and port.isdigit():
            return port
    elif host.startswith("[") and "]:" in host:
        return host.rsplit(":", 1)[1]
    return "443" if scheme == "https" else "80"


def client_response_headers(
    upstream: Iterable[tuple[str, str]], reserved_cookies: frozenset[str]
) -> CIMultiDict[str]:
    """The pod's response headers as the browser may see them (no reserved Set-Cookie)."""
    pairs = list(upstream)
    drop: frozenset[str] = HOP_BY_HOP
    for name, value in pairs:
        if name.lower() == "connection":
            drop = drop | frozenset(t.strip().lower() for t in value.split(",") if t.strip())
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in pairs:
        key = name.lower()
        if key in drop:
            continue
        if key == _SET_COOKIE and sets_reserved_cookie(value, reserved_cookies):
            continue  # a pod may not set or clear podgate's cookies
        out.add(name, value)
    return out
