"""The login page and the page shown after signing out.

Renders only: checking passwords, CSRF and `next` is the handlers' job.
The password is never echoed back into the page.
"""

from __future__ import annotations

from control.pages.markup import XSRF_FIELD, attr, hidden, layout, local_path, notice, text

INVALID_LOGIN = "Invalid user name or password."


def throttled_message(seconds: float) -> str:
    """What a person sees when failed logins are being slowed down."""
    wait = max(1, round(seconds))
    return f"Too many failed attempts: wait {wait} second{'s' if wait != 1 else ''}."


def login_page(
    *,
    xsrf: str,
    next_url: str = "",
    username: str = "",
    error: str | None = None,
    hint: str | None = None,
) -> str:
    """The sign-in form (POST /hub/login: username, password, _xsrf, next).

    `error` is shown above the form and keeps `username` filled in;
    `hint` is a note such as the dummy authenticator's warning.
    """
    next_field = hidden("next", local_path(next_url, "")) if next_url else ""
    # Focus where the person will type next: the password after a failed try.
    user_focus = "" if username else " autofocus"
    password_focus = " autofocus" if username else ""
    parts = [
        "<h1>Sign in</h1>",
        notice(error) if error else "",
        '<form method="post" action="/hub/login" class="stack">',
        hidden(XSRF_FIELD, xsrf),
        next_field,
        '<label for="username">User name</label>',
        f'<input id="username" name="username" type="text" value="{attr(username)}"'
        ' autocomplete="username" autocapitalize="none" spellcheck="false" required'
        f"{user_focus}>",
        '<label for="password">Password</label>',
        '<input id="password" name="password" type="password"'
        f' autocomplete="current-password" required{password_focus}>',
        '<button type="submit" class="button button-primary">Sign in</button>',
        "</form>",
        f'<aside class="hint" role="note">{text(hint)}</aside>' if hint else "",
    ]
    return layout("Sign in", "".join(parts))


def logged_out_page() -> str:
    """Where logout lands: says it worked and offers to sign in again."""
    main = (
        "<h1>Signed out</h1>"
        "<p>You are signed out of podgate. Your server, if it runs, keeps running "
        "until you stop it or it is culled for being idle.</p>"
        '<p class="actions">'
        '<a class="button button-primary" href="/hub/login">Sign in again</a></p>'
    )
    return layout("Signed out", main)
