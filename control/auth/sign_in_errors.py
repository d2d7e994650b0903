"""Why a redirect sign-in failed: one exception, in words a person can act on.

`reason` is a short fixed word for logs and metrics ("state", "token",
"provider_down", ...); `message` is what the failure page says; `status`
is the HTTP status of that page. Nothing here logs or renders.
"""

from __future__ import annotations


class SignInFailed(Exception):
    """A sign-in that cannot go on; the message is for the person signing in."""

    def __init__(self, reason: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.next_url = ""  # where the attempt was going: "Try again" keeps it


# The messages shown, one per kind of failure.
EXPIRED_ATTEMPT = (
    "This sign-in attempt has expired or was already used (or it was started in "
    "another browser). Start again."
)
PROVIDER_DOWN = "The identity provider cannot be reached right now. Try again in a moment."
PROVIDER_SLOW = "The identity provider did not answer in time. Try again in a moment."
PROVIDER_REFUSED = "The identity provider refused this sign-in"
BAD_TOKEN = (
    "The identity provider's answer could not be verified, so you were not signed in. "
    "Start again; if it keeps happening, tell an administrator."
)
NOT_ALLOWED = "This account may not use this service. Ask an administrator for access."
NO_USERNAME = "The identity provider did not say who you are (no user name in its answer)."


def provider_refused(error: str, description: str = "") -> SignInFailed:
    """The provider's own error (access_denied, invalid_grant, ...), told as it said it."""
    said = f"{error}: {description}" if description else error
    return SignInFailed("provider_refused", f"{PROVIDER_REFUSED} ({said[:300]}).", 403)


def provider_down() -> SignInFailed:
    return SignInFailed("provider_down", PROVIDER_DOWN, 502)


def provider_slow() -> SignInFailed:
    return SignInFailed("provider_slow", PROVIDER_SLOW, 504)


def bad_token(detail: str) -> SignInFailed:
    # The detail goes to the log (via reason); the page keeps to the words above.
    return SignInFailed(f"token: {detail}", BAD_TOKEN, 403)
