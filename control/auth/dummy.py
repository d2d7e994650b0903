"""The dummy authenticator: any valid user name with one shared password.

For trying podgate locally (the built-in default), never for production; its
login hint says so on the login page. It must never accept an empty password
or a name that control.names rejects.
"""

from __future__ import annotations

import hashlib
import hmac

from control.names import normalise_username

DUMMY_HINT = (
    "dummy authenticator: not for production. "
    "Any user name logs in with the shared password printed when podgate started."
)


class DummyAuthenticator:
    """Any user name that normalises, with the one `shared_password`."""

    login_hint: str | None = DUMMY_HINT

    def __init__(self, password: str, *, generated: bool = False) -> None:
        if not password:
            raise ValueError("the dummy authenticator needs a non-empty shared password")
        self.shared_password = password
        # Made up at start (auth.password unset): only then is it shown, as nobody knows it.
        self.generated = generated
        self._digest = _digest(password)

    async def authenticate(self, username: str, password: str) -> str | None:
        name = normalise_username(username)  # BadUserName for a name no one can have
        # Compare digests so the time taken says nothing about the password's length.
        if password and hmac.compare_digest(_digest(password), self._digest):
            return name
        return None


def _digest(password: str) -> bytes:
    return hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest()
