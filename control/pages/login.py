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


def redirect_login_page(*, provider: str, start_url: str) -> str:
    """The sign-in page of an identity provider: one button, no password form.

    `start_url` is the local path that starts the sign-in (it carries `next`).
    """
    href = attr(local_path(start_url, "/hub/oauth_login"))
    main = (
        "<h1>Sign in</h1>"
        f"<p>Sign in with your {text(provider)} account.</p>"
        '<p class="actions">'
        f'<a class="button button-primary" id="sign-in" href="{href}">'
        f"Sign in with {text(provider)}</a></p>"
    )
    return layout("Sign in", main)


def sign_in_failed_page(*, message: str, retry_url: str, provider: str) -> str:
    """Where a failed identity-provider sign-in lands: what went wrong, and a way to try again."""
    href = attr(local_path(retry_url, "/hub/login"))
    main = (
        "<h1>Sign-in did not work</h1>"
        f"{notice(message)}"
        '<p class="actions">'
        f'<a class="button button-primary" id="try-again" href="{href}">'
        f"Try again</a></p>"
        f"<p>You tried to sign in with {text(provider)}.</p>"
    )
    return layout("Sign-in did not work", main)


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
