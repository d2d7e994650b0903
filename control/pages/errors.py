"""Error pages in the hub's look: 400, 403, 404, 429, 500, 503 and any other status.

Renders only; which exception becomes which status is decided in the web
layer. Never puts a traceback or an internal detail on the page: `message`
is what the person should read.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

from control.pages.markup import attr, layout, local_path, text

_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("Bad request", "The request could not be understood. Go back and try again."),
    403: ("Forbidden", "You are not allowed to do that."),
    404: ("Not found", "There is nothing here."),
    429: ("Too many requests", "Too many requests; try again in a moment."),
    500: ("Something went wrong", "podgate hit an unexpected error. Try again in a moment."),
    503: ("Unavailable", "This service is not available right now. Try again in a moment."),
}


def _defaults(status: int) -> tuple[str, str]:
    if status in _DEFAULTS:
        return _DEFAULTS[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return phrase, ""


def error_page(
    status: int,
    message: str | None = None,
    *,
    title: str | None = None,
    user: str | None = None,
    xsrf: str = "",
    retry_after: float | None = None,
    retry_url: str | None = None,
    links: Sequence[tuple[str, str]] | None = None,
) -> str:
    """A page for `status`, with a default title and message when none are given.

    With `retry_after` the page reloads itself after that many seconds
    (meta refresh, no JS), at `retry_url` when given (a local path) or
    else at the same address. `links` are the ways back as (label, href):
    a local path, or "" for this same address; Home when not given.
    """
    default_title, default_message = _defaults(status)
    head = ""
    if retry_after is not None:
        seconds = max(1, round(retry_after))
        url = local_path(retry_url, "") if retry_url else ""
        content = f"{seconds}; url={url}" if url else str(seconds)
        head = f'<meta http-equiv="refresh" content="{attr(content)}">'
    main = (
        f'<p class="status-code">{status}</p>'
        f"<h1>{text(title or default_title)}</h1>"
        f"<p>{text(message or default_message)}</p>"
        f'<p class="actions">{_ways_back(links)}</p>'
    )
    return layout(title or default_title, main, user=user, xsrf=xsrf, head=head)


def _ways_back(links: Sequence[tuple[str, str]] | None) -> str:
    """The links of an error page as buttons; the first is the primary one."""
    chosen = [("Home", "/hub/home")] if links is None else links
    buttons = []
    for i, (label, href) in enumerate(chosen):
        # "" reloads this address; anything else must be a path on this site.
        target = href if href == "" else local_path(href, "/hub/home")
        kind = "button button-primary" if i == 0 and len(chosen) > 1 else "button"
        buttons.append(f'<a class="{kind}" href="{attr(target)}">{text(label)}</a>')
    return "".join(buttons)


def too_many_spawns_page(
    retry_after: float,
    *,
    retry_url: str | None = None,
    user: str | None = None,
    xsrf: str = "",
) -> str:
    """The 429 page of the concurrent spawn limit: says so and retries by itself."""
    seconds = max(1, round(retry_after))
    return error_page(
        429,
        f"Too many servers are starting; retrying in {seconds} seconds.",
        title="Busy starting servers",
        user=user,
        xsrf=xsrf,
        retry_after=seconds,
        retry_url=retry_url,
    )
