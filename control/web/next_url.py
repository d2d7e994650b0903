"""Where to send a browser after login or spawn: the `next` parameter, made safe.

Only a local absolute path is honoured. Anything that a browser could take
to another origin ("//evil", "/\\evil", "https:...", control characters,
encoded variants of those after one decoding) falls back to the default:
no open redirect.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

MAX_NEXT_LENGTH = 2048


def safe_next(value: str | None, default: str) -> str:
    """`value` when it is a local path (with query), else `default`."""
    if not value or len(value) > MAX_NEXT_LENGTH:
        return default
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return default  # spaces, tabs, CR/LF: browsers strip some of them and reparse
    for candidate in (value, unquote(value)):
        if not candidate.startswith("/") or candidate.startswith(("//", "/\\")):
            return default
        if "\\" in candidate.split("?", 1)[0]:
            return default  # browsers read a backslash in a path as a slash
        parts = urlsplit(candidate)
        if parts.scheme or parts.netloc:
            return default
    return value
