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

OAuth2 / OpenID Connect (auth.kind oidc): a redirect login has no password
form. control.auth.oidc.OidcLogin implements this protocol too (its
`authenticate` signs nobody in) and, beside it, `start(next_url,
redirect_uri)` -> (provider URL, attempt cookie) and `finish(query,
cookie_values, redirect_uri)` -> SignedIn (user, groups, tokens), raising
SignInFailed with the words for the failure page. The web layer
(control.web.oidc_login) serves /hub/oauth_login and /hub/oauth_callback
when Hub.redirect_login is set, and the login page then shows one button.
UserAccess (now with groups), the session cookie and the records stay as
they are.

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
