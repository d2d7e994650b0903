"""The spawn pages: the profile form, the live progress page and the failure page.

The progress page works in two ways: with JavaScript, static/spawn.js
follows /hub/api/users/<name>/server/progress (JupyterHub's event format:
progress, message, ready, failed, url); without it, the page refreshes
itself every 2 s and the handler renders the events so far. URLs reach the
script through data- attributes; nothing inline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from control.pages.markup import (
    XSRF_FIELD,
    attr,
    hidden,
    key_path,
    layout,
    local_path,
    notice,
    post_form,
    server_url,
    static_url,
    text,
    user_path,
)
from control.settings import Profile

NOSCRIPT_REFRESH_SECONDS = 2


def progress_url(user: str) -> str:
    """The Server-Sent Events stream of a user's spawn (JupyterHub's path)."""
    name, _, server = user.partition("/")
    if server:  # a named server's key (control.names.server_key)
        return f"/hub/api/users/{user_path(name)}/servers/{quote(server, safe='')}/progress"
    return f"/hub/api/users/{user_path(user)}/server/progress"


def retry_url(user: str) -> str:
    return f"/hub/spawn/{key_path(user)}"


def spawn_form_page(
    user: str,
    *,
    profiles: Sequence[Profile],
    xsrf: str,
    next_url: str = "",
    action: str = "/hub/spawn",
    error: str | None = None,
) -> str:
    """Choose a profile and start (POST `action`: profile, _xsrf, next).

    The default profile (or the first) is checked; `error` is shown when
    the handler refused a choice (a BadProfile).
    """
    checked = next((p.slug for p in profiles if p.default), profiles[0].slug if profiles else "")
    choices = []
    for profile in profiles:
        box_id = f"profile-{profile.slug}"
        description = (
            f'<span class="choice-description">{text(profile.description)}</span>'
            if profile.description
            else ""
        )
        choices.append(
            f'<label class="choice" for="{attr(box_id)}">'
            f'<input type="radio" name="profile" id="{attr(box_id)}" value="{attr(profile.slug)}"'
            f"{' checked' if profile.slug == checked else ''} required>"
            f'<span class="choice-text"><span class="choice-name">{text(profile.display_name)}'
            f"</span>{description}</span></label>"
        )
    fieldset = (
        '<fieldset class="choices"><legend>Server options</legend>'
        + "".join(choices)
        + "</fieldset>"
        if choices
        else ""
    )
    main = (
        "<h1>Start your server</h1>"
        + (notice(error) if error else "")
        + f'<form method="post" action="{attr(action)}" class="stack">'
        + hidden(XSRF_FIELD, xsrf)
        + (hidden("next", local_path(next_url, "")) if next_url else "")
        + fieldset
        + '<button type="submit" class="button button-primary">Start</button></form>'
    )
    return layout("Start your server", main, user=user, xsrf=xsrf)


def _event_view(
    events: Sequence[Mapping[str, Any]],
) -> tuple[int, list[str], Mapping[str, Any] | None, bool]:
    """Latest progress, the messages in order, the failure event if any, and readiness."""
    progress = 0
    messages: list[str] = []
    failed: Mapping[str, Any] | None = None
    ready = False
    for event in events:
        value = event.get("progress")
        if isinstance(value, int | float) and not isinstance(value, bool):
            progress = max(progress, min(100, max(0, int(value))))
        message = event.get("message")
        if message:
            messages.append(str(message))
        if event.get("failed"):
            failed = event
        if event.get("ready"):
            ready = True
    return progress, messages, failed, ready


def spawn_pending_page(
    user: str,
    *,
    xsrf: str,
    events: Sequence[Mapping[str, Any]] = (),
    next_url: str = "",
    viewer: str | None = None,
) -> str:
    """The progress bar and log of `user`'s spawn, live with JS, refreshing without.

    `events` are the progress events so far (dicts in JupyterHub's format);
    `viewer` is who is signed in when it is not `user` (an admin).
    """
    target = local_path(next_url, server_url(user))
    progress, messages, failed, ready = _event_view(events)
    if ready:
        progress = 100
    log = "".join(f"<li>{text(m)}</li>" for m in messages)
    failure_message = (
        str(failed.get("message") or "The server could not be started.") if failed else ""
    )
    retry_fields = {"next": target}
    if failed:
        head = ""  # nothing more will happen by itself: no refresh
    elif ready:
        # Without JS the ready state still gets the person to their server.
        head = f'<meta http-equiv="refresh" content="0; url={attr(target)}">'
    else:
        head = (
            f'<noscript><meta http-equiv="refresh" content="{NOSCRIPT_REFRESH_SECONDS}"></noscript>'
        )
    head += f'<script src="{static_url("spawn.js")}" defer></script>'
    heading = "Your server is starting" if viewer in (None, user) else f"Starting {user}'s server"
    main = (
        f"<h1>{text(heading)}</h1>"
        '<p class="lede">This takes a moment the first time: the image may need to be '
        "downloaded. You will be taken to your server when it is ready.</p>"
        '<label class="progress-label" for="progress">Progress</label>'
        f'<progress id="progress" max="100" value="{progress}">{progress}%</progress>'
        f'<ol id="log" class="log" aria-live="polite">{log}</ol>'
        f'<div id="ready" class="ready"{"" if ready else " hidden"}>'
        f'<a class="button button-primary" href="{attr(target)}">Open your server</a></div>'
        f'<div id="failure" class="failure"{"" if failed else " hidden"}>'
        f'<div id="failure-message" class="notice notice-error" role="alert">'
        f"{text(failure_message)}</div>"
        '<div class="actions">'
        + post_form(
            retry_url(user),
            xsrf,
            "Retry",
            fields=retry_fields,
            button_class="button button-primary",
        )
        + '<a class="button" href="/hub/home">Home</a></div></div>'
        '<noscript><p class="quiet">This page refreshes every '
        f"{NOSCRIPT_REFRESH_SECONDS} seconds.</p></noscript>"
    )
    # The stream answers cookie callers only with the form token (a pod's page has none).
    stream = f"{progress_url(user)}?_xsrf={quote(xsrf, safe='')}"
    data = {"progress-url": stream, "next-url": target}
    return layout("Starting", main, user=viewer or user, xsrf=xsrf, head=head, body_data=data)


def spawn_failed_page(
    user: str,
    *,
    xsrf: str,
    message: str,
    next_url: str = "",
    viewer: str | None = None,
) -> str:
    """Why the server did not start, in words, with Retry (POST /hub/spawn/<name>) and Home."""
    target = local_path(next_url, server_url(user))
    main = (
        "<h1>Your server did not start</h1>"
        + notice(message)
        + '<div class="actions">'
        + post_form(
            retry_url(user),
            xsrf,
            "Retry",
            fields={"next": target},
            button_class="button button-primary",
        )
        + '<a class="button" href="/hub/home">Home</a></div>'
    )
    return layout("Server did not start", main, user=viewer or user, xsrf=xsrf)
