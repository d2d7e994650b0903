"""The one interface every login method implements, and how redirect logins will join it.

An `Authenticator` turns what a person typed on the login form into a user
name, or into nothing: one core coroutine, `authenticate(username,
password)`, returning the normalised name (control.names.normalise_username)
or None. None always means "wrong name or password": an authenticator never
tells which of the two was wrong, so the login page cannot be used to find
out who has an account. A name that cannot be a user name at all (empty, bad
characters) raises control.errors.BadUserName, whose message the login page
shows as it is; that says nothing about who exists.

`login_hint` is text the login page may show under the form (the dummy
authenticator's warning), or None.

OAuth2 / OpenID Connect (next): a redirect-based login has no password form.
It will implement a second, optional protocol beside this one, e.g.

    class RedirectLogin(Protocol):
        login_hint: str | None
        def login_url(self, *, state: str, callback_url: str) -> str: ...
        async def complete_login(self, query: Mapping[str, str], *, state: str,
                                 callback_url: str) -> str | None: ...

The web layer sends the browser to `login_url` (state = a CSRF-bound random
value kept in a cookie, carrying `next`), and the provider's redirect to
/hub/oauth_callback calls `complete_login` with the query string, which
exchanges the code, checks `state`, and returns the normalised user name or
None, exactly like `authenticate`. UserAccess, LoginThrottle and the session
cookie stay as they are; the web layer picks the form or the redirect with
an isinstance check on the runtime-checkable protocols. Nothing of that is
built yet.

This module holds types only: no I/O, no aiohttp.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Authenticator(Protocol):
    """Checks a typed user name and password."""

    # Shown on the login page when set (a warning, or how to get an account).
    login_hint: str | None

    async def authenticate(self, username: str, password: str) -> str | None:
        """The normalised user name when the pair is right, None when it is not.

        Raises BadUserName for a name that can never be a user (its message
        is for the person who typed it). Must never block the event loop.
        """
        ...
