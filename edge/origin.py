"""Whether a change or a WebSocket handshake sent to a user's server comes from podgate's origin.

The edge adds the pod's own token to every request it forwards to a user's
server, so the server's XSRF and Origin checks (Jupyter's) never run. Without
a check here, a page of another origin on the same site (a sibling subdomain,
another port: SameSite cookies do not tell those apart) could POST to
/user/<name>/api/terminals or open a terminal WebSocket with the visitor's
cookie. So the edge refuses, for routes it vouches for with a session, every
unsafe method and every upgrade whose browser says it came from elsewhere.

`from_permitted_origin` decides, in this order:
- the client's own `Authorization: token …` (or `Bearer …`): a script. A
  browser never attaches such a header by itself, and a page of another
  origin can add one only after a CORS preflight that the user's server
  would have to approve;
- `Sec-Fetch-Site: same-origin`: the browser's own verdict, which no page
  can forge (it survives a proxy that rewrites Host, too);
- an `Origin` header: allowed only when it is the public origin (scheme and
  Host as the request arrived at podgate) or an allowed origin from the
  config; `Origin: null` (sandboxed frames, privacy redirects) is neither;
- `Sec-Fetch-Site: same-site` or `cross-site` with no Origin: refused;
- neither header (curl, scripts, browsers too old for either): allowed.

Pure functions on strings: no I/O, no aiohttp, never decides routing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

# RFC 9110 9.2.1; everything else may change something on the server.
SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "TRACE"))
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCRIPT_SCHEMES = ("token", "bearer")


def needs_origin_check(method: str, upgrade: bool) -> bool:
    """Whether a request to a user's server must come from a permitted origin."""
    return upgrade or method not in SAFE_METHODS


def normalise_origin(value: str) -> str | None:
    """`scheme://host[:port]` in lower case without the default port; None if not an origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if (
        scheme not in _DEFAULT_PORTS
        or not host
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        return None
    if ":" in host:
        host = f"[{host}]"  # IPv6, as browsers write it
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def parse_origins(values: Iterable[str]) -> frozenset[str]:
    """Normalised origins for the config; ValueError names the first that is not one."""
    found = set()
    for value in values:
        origin = normalise_origin(value)
        if origin is None:
            raise ValueError(f"{value!r} is not an origin such as https://notebooks.example.org")
        found.add(origin)
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class OriginClaims:
    """What one request says about where it comes from (None: the header is absent)."""

    # The public origin's parts as the request arrived: the connection's scheme and
    # Host, or X-Forwarded-Proto and -Host when a trusted proxy sent them.
    scheme: str
    host: str
    origin: str | None
    fetch_site: str | None
    authorization: str | None


def from_permitted_origin(claims: OriginClaims, allowed: frozenset[str]) -> bool:
    """Whether the request comes from the public origin, an allowed one, or a script."""
    auth = claims.authorization
    if auth is not None and auth.strip().partition(" ")[0].lower() in _SCRIPT_SCHEMES:
        return True
    site = claims.fetch_site.strip().lower() if claims.fetch_site is not None else None
    if site == "same-origin":
        return True
    if claims.origin is not None:
        origin = normalise_origin(claims.origin)
        if origin is None:
            return False
        return origin in allowed or origin == normalise_origin(f"{claims.scheme}://{claims.host}")
    return site not in ("same-site", "cross-site")


def first_value(value: str | None) -> str | None:
    """The first of a comma-separated proxy header's values (the hop nearest the browser)."""
    if value is None:
        return None
    return value.split(",", 1)[0].strip() or None
