"""Browsers a user has signed in from before: a signed cookie naming those users.

The login throttle slows guessing of one user name from many addresses. On
its own that would let anyone lock a user out by failing a few times in
their name; with this cookie, the user's own browser is recognised and
skips the per-name count (the per-address count still applies to it), so a
guesser slows only themselves. A browser that never signed in as the user
(a fresh one, or the guesser's) is counted by name as before.

The cookie holds the names (at most MAX_USERS, newest first) and the time
it was issued, signed with a key derived from the cookie secret for this use
only. Pure: no I/O, no aiohttp. `users` never raises.
"""

from __future__ import annotations

from collections.abc import Iterable

from itsdangerous import BadData, URLSafeTimedSerializer

MAX_USERS = 8
# Long enough to span holidays; a browser unseen for longer is a fresh one again.
MAX_AGE_SECONDS = 180 * 24 * 3600
_MAX_VALUE = 2048


class KnownBrowsers:
    """Issues and reads the known-browser cookie value; every secret verifies, the first signs."""

    def __init__(self, secrets: Iterable[str], max_age_seconds: float = MAX_AGE_SECONDS) -> None:
        keys = [s for s in secrets if s]
        if not keys:
            raise ValueError("KnownBrowsers needs a secret")
        # itsdangerous signs with the last key and verifies with all of them.
        self._serializer = URLSafeTimedSerializer(
            list(reversed(keys)), salt="podgate.known-browser"
        )
        self.max_age_seconds = max_age_seconds

    def issue(self, user: str, already: Iterable[str] = ()) -> str:
        """The value naming `user` first, then the names the browser was already known for."""
        names = [user, *(n for n in already if n != user)][:MAX_USERS]
        return self._serializer.dumps(names)

    def users(self, values: Iterable[str]) -> list[str]:
        """The names the first value that verifies vouches for (newest first); [] if none."""
        for value in values:
            if len(value) > _MAX_VALUE:
                continue
            try:
                names = self._serializer.loads(value, max_age=self.max_age_seconds)
            except (BadData, ValueError, TypeError):
                continue
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return names[:MAX_USERS]
        return []
