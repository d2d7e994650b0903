"""Path normalisation: the one place a request path is put in canonical form.

The edge matches routes, and authorises users, against the normalised path
only, so dot segments, encoded slashes, repeated slashes and the like can
never select a route other than the one the canonical path names.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

# Characters whose presence means the cheap "already normal" check must not
# be trusted: percent escapes, dot segments, doubled slashes, backslashes.
_SUSPECT = ("%", "/.", "//", "\\")


def normalise_path(raw_path: str) -> str:
    """Canonical form of a request path (query string removed).

    Percent escapes are decoded exactly once (so ``%252e`` stays a literal
    ``%2e``, never a dot segment), dot segments are resolved, empty segments
    collapse, and the result always starts with "/". A trailing slash is
    kept, because it is part of what the user asked for.
    """
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    if path.startswith("/") and not any(s in path for s in _SUSPECT):
        return path  # fast path: the common case is already canonical
    decoded = unquote(path, errors="replace").replace("\\", "/")
    trailing = decoded.endswith("/") or decoded.endswith("/.") or decoded.endswith("/..")
    out: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    result = "/" + "/".join(out)
    if trailing and result != "/":
        result += "/"
    return result


def route_key(path: str) -> str:
    """The table key of a route path: normalised, no trailing slash, root is "/"."""
    key = normalise_path(path if path.startswith("/") else "/" + path)
    if len(key) > 1 and key.endswith("/"):
        key = key.rstrip("/") or "/"
    return key


def split_target(target: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, base path) of a target URL such as http://10.0.0.5:8888/x.

    Raises ValueError for anything that is not an absolute http(s) or ws(s) URL.
    """
    parts = urlsplit(target)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise ValueError(f"target must be an absolute http(s) URL, got {target!r}")
    secure = scheme in ("https", "wss")
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError as e:
        raise ValueError(f"target has an invalid port: {target!r}") from e
    base = parts.path.rstrip("/")
    return ("https" if secure else "http"), parts.hostname, port, base
