"""The small vocabulary every page is written in: escaping, URLs, forms and the base layout.

Everything a user controls (names, profile texts, messages, `next`) goes
through `text()` or `attr()` here before it reaches HTML; callers pass
already-rendered HTML only as `main`/`head`. It must never emit inline
script or style: the hub's Content-Security-Policy forbids both.
"""

from __future__ import annotations

import hashlib
import html
from functools import cache
from pathlib import Path
from urllib.parse import quote

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/hub/static"
XSRF_FIELD = "_xsrf"  # JupyterHub's name for the CSRF token field


def text(value: object) -> str:
    """`value` as HTML text content."""
    return html.escape(str(value), quote=True)


def attr(value: object) -> str:
    """`value` as a double-quoted attribute value (quotes and ampersands escaped)."""
    return html.escape(str(value), quote=True)


def user_path(user: str) -> str:
    """The URL path segment for a user name, quoted as the edge quotes it."""
    return quote(user, safe="")


def key_path(key: str) -> str:
    """The path segments of a server key: "<user>" or "<user>/<server>" (control.names)."""
    name, _, server = key.partition("/")
    return user_path(name) + (f"/{quote(server, safe='')}" if server else "")


def server_url(user: str) -> str:
    """Where a user's running server is reached through the edge; `user` may be a server
    key ("user/server", control.names.server_key) for a named server."""
    name, _, server = user.partition("/")
    return f"/user/{user_path(name)}/" + (f"{quote(server, safe='')}/" if server else "")


def local_path(target: str | None, default: str) -> str:
    """`target` when it is a path on this site, else `default`.

    The handlers already refuse open redirects; the pages check again
    because a `javascript:` or `//host` value here would become a redirect
    done by the browser itself.
    """
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(c in target for c in "\\\r\n\t") or any(ord(c) < 0x20 for c in target):
        return default
    return target


@cache
def _static_version(name: str) -> str:
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    """URL of a file of static/, versioned by its content so it can be cached long."""
    return f"{STATIC_PREFIX}/{name}?v={_static_version(name)}"


def hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{attr(name)}" value="{attr(value)}">'


def post_form(
    action: str,
    xsrf: str,
    button: str,
    *,
    fields: dict[str, str] | None = None,
    button_class: str = "button",
    form_class: str = "inline",
) -> str:
    """A POST form that is a single button, carrying the CSRF token and `fields`."""
    inputs = hidden(XSRF_FIELD, xsrf) + "".join(hidden(k, v) for k, v in (fields or {}).items())
    return (
        f'<form method="post" action="{attr(action)}" class="{attr(form_class)}">{inputs}'
        f'<button type="submit" class="{attr(button_class)}">{text(button)}</button></form>'
    )


def notice(message: str, kind: str = "error") -> str:
    """A message box; errors are announced to screen readers as they appear."""
    role = "alert" if kind == "error" else "status"
    return f'<div class="notice notice-{attr(kind)}" role="{role}">{text(message)}</div>'


def layout(
    title: str,
    main: str,
    *,
    user: str | None = None,
    xsrf: str = "",
    head: str = "",
    body_data: dict[str, str] | None = None,
) -> str:
    """The whole document: head, the wordmark bar (with logout when signed in), `main`.

    `main` and `head` are HTML made by the page functions; `title`, `user`
    and the `body_data` values are escaped here. `body_data` becomes
    data-* attributes on <body>, the way pages hand URLs to their scripts.
    """
    account = ""
    if user is not None:
        account = (
            f'<div class="account"><span class="who">Signed in as '
            f"<strong>{text(user)}</strong></span>"
            f"{post_form('/hub/logout', xsrf, 'Sign out', button_class='button button-quiet')}"
            "</div>"
        )
    data = "".join(f' data-{attr(k)}="{attr(v)}"' for k, v in (body_data or {}).items())
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{text(title)} · podgate</title>"
        f'<link rel="icon" href="{static_url("podgate.svg")}" type="image/svg+xml">'
        f'<link rel="stylesheet" href="{static_url("podgate.css")}">'
        f"{head}</head>\n"
        f"<body{data}>"
        '<header class="bar"><a class="wordmark" href="/hub/home">'
        f'<img src="{static_url("podgate.svg")}" alt="" width="22" height="22">'
        "<span>podgate</span></a>"
        f"{account}</header>\n"
        f'<main class="card">{main}</main>\n'
        "</body></html>\n"
    )
