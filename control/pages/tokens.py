"""The token page (/hub/token): make a personal API token, see and revoke the ones made.

Renders only. The new token's secret is shown once, on the page that
answers the POST that made it; the list never shows a secret. Making and
revoking are POST forms with the CSRF token.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from control.pages.markup import XSRF_FIELD, attr, hidden, layout, notice, post_form, text
from control.user_tokens import UserToken

# (seconds or "" for never, label): the expiries offered, JupyterHub's choices.
EXPIRIES: tuple[tuple[str, str], ...] = (
    ("3600", "1 hour"),
    ("86400", "1 day"),
    ("604800", "1 week"),
    ("2592000", "30 days"),
    ("", "Never"),
)


def _when(epoch: float | None, never: str = "never") -> str:
    if epoch is None:
        return never
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def token_page(
    user: str,
    *,
    xsrf: str,
    tokens: Sequence[UserToken],
    scopes: Sequence[str],
    now: float,
    new_token: str | None = None,
    error: str | None = None,
) -> str:
    """The form (note, expiry, scopes the user holds), the new secret once, the list."""
    boxes = "".join(
        f'<label class="choice" for="scope-{attr(scope)}"><input type="checkbox" name="scopes" '
        f'id="scope-{attr(scope)}" value="{attr(scope)}" checked> '
        f'<span class="choice-name">{text(scope)}</span></label>'
        for scope in scopes
    )
    expiry = "".join(
        f'<option value="{attr(value)}"{" selected" if value == "604800" else ""}>'
        f"{text(label)}</option>"
        for value, label in EXPIRIES
    )
    made = ""
    if new_token is not None:
        made = (
            notice("Your new API token. Copy it now: it is not shown again.", kind="info")
            + f'<p><code id="new-token">{text(new_token)}</code></p>'
        )
    form = (
        '<form method="post" action="/hub/token" class="stack">'
        + hidden(XSRF_FIELD, xsrf)
        + '<label for="token-note">Note</label>'
        '<input id="token-note" name="note" maxlength="200" placeholder="What is it for?">'
        '<label for="token-expiry">Expires in</label>'
        f'<select id="token-expiry" name="expires_in">{expiry}</select>'
        f'<fieldset class="choices"><legend>Scopes</legend>{boxes}</fieldset>'
        '<button type="submit" class="button button-primary">Request new API token</button>'
        "</form>"
    )
    rows = []
    for token in tokens:
        state = " (expired)" if token.expired(now) else ""
        revoke = post_form(
            f"/hub/token/{token.id}/revoke", xsrf, "Revoke", button_class="button button-danger"
        )
        rows.append(
            f'<tr data-token="{attr(token.id)}"><td>{text(token.note)}</td>'
            f"<td>{text(', '.join(token.scopes))}</td><td>{text(_when(token.created))}</td>"
            f"<td>{text(_when(token.expires_at) + state)}</td><td>{revoke}</td></tr>"
        )
    listing = (
        '<table class="tokens"><thead><tr><th>Note</th><th>Scopes</th><th>Created</th>'
        f"<th>Expires</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="quiet">You have no API tokens.</p>'
    )
    main = (
        "<h1>API tokens</h1>"
        + (notice(error) if error else "")
        + made
        + "<p>A token acts as you, with the scopes you choose, from scripts and tools: "
        "send it as <code>Authorization: token …</code>.</p>"
        + form
        + "<h2>Your tokens</h2>"
        + listing
    )
    return layout("API tokens", main, user=user, xsrf=xsrf)
