"""The home page (/hub/home): the signed-in user's server, its state and what can be done.

Renders only; the handler reads the state from the spawner and the pod
watch. Starting and stopping are POST forms with the CSRF token, never links.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from control.pages.markup import (
    XSRF_FIELD,
    attr,
    hidden,
    key_path,
    layout,
    notice,
    post_form,
    server_url,
    text,
    user_path,
)

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


@dataclass(frozen=True, slots=True)
class NamedServerView:
    """One of the user's named servers as the home page lists it."""

    name: str
    state: ServerState


def home_page(
    user: str,
    *,
    xsrf: str,
    state: ServerState,
    reason: str | None = None,
    choose_profile: bool = False,
    is_admin: bool = False,
    named: list[NamedServerView] | None = None,
    named_limit: int = 0,
) -> str:
    """The user's server card.

    `reason` is the failure in words (state "failed"); `choose_profile`
    adds a link to the spawn form when the configuration offers profiles;
    `is_admin` a way to the admin panel (nothing else leads there). `named`
    lists the named servers (None: named servers are off), each with its
    actions, and a form to start a new one while fewer than `named_limit` exist.
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
    if state in ("starting", "stopping") or any(
        n.state in ("starting", "stopping") for n in named or ()
    ):
        head = f'<meta http-equiv="refresh" content="{_REFRESH_SECONDS}">'
    main = (
        "<h1>Your server</h1>"
        f'<p class="state"><span class="badge state-{state}">{badge}</span> {text(sentence)}</p>'
        + (notice(reason) if state == "failed" and reason else "")
        + f'<div class="actions">{"".join(actions)}</div>'
        + (_named_section(user, xsrf, named, named_limit) if named is not None else "")
        + '<p class="home-tokens"><a href="/hub/token">API tokens</a>'
        '<span class="quiet"> — for scripts and tools acting as you</span></p>'
        + (
            '<p class="home-admin"><a href="/hub/admin">Admin panel</a>'
            '<span class="quiet"> — every user\'s server</span></p>'
            if is_admin
            else ""
        )
    )
    return layout("Home", main, user=user, xsrf=xsrf, head=head)


def _named_section(user: str, xsrf: str, named: list[NamedServerView], limit: int) -> str:
    """The named servers table (JupyterHub's home page): name, state, actions; then a form."""
    rows = []
    for server in named:
        key = f"{user}/{server.name}"
        badge, _ = _STATE_WORDS[server.state]
        actions = []
        if server.state == "running":
            actions.append(f'<a class="button button-primary" href="{server_url(key)}">Open</a>')
        elif server.state == "starting":
            actions.append(
                f'<a class="button" href="/hub/spawn-pending/{key_path(key)}">Show progress</a>'
            )
        elif server.state in ("stopped", "failed"):
            actions.append(post_form(f"/hub/spawn/{key_path(key)}", xsrf, "Start"))
            actions.append(
                post_form(
                    f"/hub/delete/{key_path(key)}",
                    xsrf,
                    "Delete",
                    button_class="button button-quiet",
                )
            )
        if server.state in ("running", "starting"):
            actions.append(
                post_form(
                    f"/hub/stop/{key_path(key)}", xsrf, "Stop", button_class="button button-danger"
                )
            )
        rows.append(
            f'<tr data-server="{attr(server.name)}"><td>{text(server.name)}</td>'
            f'<td><span class="badge state-{server.state}">{badge}</span></td>'
            f'<td class="actions">{"".join(actions)}</td></tr>'
        )
    table = (
        '<table class="named-servers"><thead><tr><th>Server</th><th>State</th><th>Actions</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="quiet">No named servers yet.</p>'
    )
    form = (
        f'<form method="post" action="/hub/spawn/{user_path(user)}" class="inline">'
        + hidden(XSRF_FIELD, xsrf)
        + '<label for="server-name">New server name</label> '
        '<input id="server-name" name="server_name" required maxlength="30" '
        'pattern="[a-z]([a-z0-9-]*[a-z0-9])?" autocomplete="off"> '
        '<button type="submit" class="button">Start named server</button></form>'
        if len(named) < limit
        else f'<p class="quiet">You have the most named servers allowed ({limit}).</p>'
    )
    return f'<h2>Named servers</h2>{table}<div class="actions">{form}</div>'
