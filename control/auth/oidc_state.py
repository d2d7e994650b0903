"""The sign-in attempt a browser is in the middle of: a signed, short-lived, one-time cookie.

Starting a sign-in makes a random `state`, a `nonce` and a PKCE
`code_verifier`, and puts them (with where to go afterwards) in a cookie
signed with the cookie secret (itsdangerous, a key of its own). Only the
state travels to the provider; the callback is accepted only when the
state it brings equals the cookie's, the cookie verifies and is at most
MAX_AGE_SECONDS old. The callback clears the cookie whatever the outcome,
so an attempt is used once: a replayed callback finds no cookie, a forged
one cannot sign it, another browser has none.

Why a cookie and not a server-side list of spent states: nothing has to be
written before the provider is even contacted, any replica (and a replica
restarted mid sign-in) verifies the cookie with the shared secret alone,
and the authorization code it unlocks is single-use at the provider
anyway (a replay with a copied cookie meets a refused code). Pure: no I/O.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from itsdangerous import BadData, URLSafeTimedSerializer

MAX_AGE_SECONDS = 600  # ten minutes from the button to the callback
_MAX_VALUE = 4096


@dataclass(frozen=True)
class Attempt:
    state: str
    nonce: str
    code_verifier: str
    next_url: str
    started: float


class Attempts:
    """Issues and checks sign-in attempt cookies; every secret verifies, the first signs."""

    def __init__(self, secrets_: Iterable[str], max_age_seconds: float = MAX_AGE_SECONDS) -> None:
        keys = [s for s in secrets_ if s]
        if not keys:
            raise ValueError("sign-in attempts need a secret")
        self._serializer = URLSafeTimedSerializer(list(reversed(keys)), salt="podgate.oidc-attempt")
        self.max_age_seconds = max_age_seconds

    def start(self, next_url: str) -> tuple[Attempt, str]:
        """A new attempt and the cookie value that carries it."""
        attempt = Attempt(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            # RFC 7636: 43-128 characters of the unreserved set; token_urlsafe(48) is 64.
            code_verifier=secrets.token_urlsafe(48),
            next_url=next_url,
            started=time.time(),
        )
        value = self._serializer.dumps(
            [attempt.state, attempt.nonce, attempt.code_verifier, attempt.next_url]
        )
        return attempt, value

    def find(self, values: Iterable[str], state: str) -> Attempt | None:
        """The attempt of the first cookie value that verifies, is young and holds `state`."""
        for value in values:
            if len(value) > _MAX_VALUE:
                continue
            try:
                loaded, signed_at = self._serializer.loads(
                    value, max_age=self.max_age_seconds, return_timestamp=True
                )
            except (BadData, ValueError, TypeError):
                continue
            if not (isinstance(loaded, list) and len(loaded) == 4):
                continue
            if not all(isinstance(part, str) for part in loaded):
                continue
            if not hmac.compare_digest(loaded[0].encode(), state.encode()):
                continue
            return Attempt(*loaded, started=signed_at.timestamp())
        return None
