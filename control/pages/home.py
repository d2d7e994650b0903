"""The home page (/hub/home): the signed-in user's server, its state and what can be done.

Renders only; the handler reads the state from the spawner and the pod
watch. Starting and stopping are POST forms with the CSRF token, never links.
"""

from __future__ import annotations

from typing import Literal

from control.pages.markup import layout, notice, post_form, server_url, text, user_path

ServerState = Literal["stopped", "starting", "running", "stopping", "failed"]

_STATE_WORDS: dict[str, tuple[str, str]] = {
    "stopped": ("Stopped", "Your server is not running."),
    "starting": ("Starting", "Your server is starting."),
    "running": ("Running", "Your server is running."),
    "stopping": ("Stopping", "Your server is stopping."),
    "failed": ("Failed", "Your server could not be started."),
}
# Transitional states re-render by themselves, so the page never goes stale.
_REFRESH_SECONDS = 3


def home_page(
    user: str,
    *,
    xsrf: str,
    state: ServerState,
    reason: str | None = None,
    choose_profile: bool = False,
    is_admin: bool = False,
) -> str:
    """The user's server card.

    `reason` is the failure in words (state "failed"); `choose_profile`
    adds a link to the spawn form when the configuration offers profiles;
    `is_admin` a way to the admin panel (nothing else leads there).
    """
    badge, sentence = _STATE_WORDS[state]
    actions: list[str] = []
    start = post_form("/hub/spawn", xsrf, "Start my server", button_class="button button-primary")
    stop = post_form("/hub/stop", xsrf, "Stop my server", button_class="button button-danger")
    if state in ("stopped", "failed"):
        actions.append(start)
        if choose_profile:
            actions.append('<a class="button" href="/hub/spawn">Choose a profile…</a>')
    elif state == "starting":
        actions.append(
            f'<a class="button button-primary" href="/hub/spawn-pending/{user_path(user)}">'
            "Show progress</a>"
        )
        actions.append(stop)
    elif state == "running":
        actions.append(
            f'<a class="button button-primary" href="{server_url(user)}">Open my server</a>'
        )
        actions.append(stop)
    head = ""
    if state in ("starting", "stopping"):
        head = f'<meta http-equiv="refresh" content="{_REFRESH_SECONDS}">'
    main = (
        "<h1>Your server</h1>"
        f'<p class="state"><span class="badge state-{state}">{badge}</span> {text(sentence)}</p>'
        + (notice(reason) if state == "failed" and reason else "")
        + f'<div class="actions">{"".join(actions)}</div>'
        + (
            '<p class="home-admin"><a href="/hub/admin">Admin panel</a>'
            '<span class="quiet"> — every user\'s server</span></p>'
            if is_admin
            else ""
        )
    )
    return layout("Home", main, user=user, xsrf=xsrf, head=head)
