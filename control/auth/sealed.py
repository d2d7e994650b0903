"""Refresh tokens at rest: sealed (encrypted and authenticated) before they go into a record.

A refresh token lets its holder read the user's groups (and more) at the
provider for weeks, and the per-user records are ConfigMaps: so it is
stored as a JWE (joserfc; `dir` with A256GCM) under a key derived from the
cookie secret for this use only. Every replica shares the secret and can
open it; someone who can only read ConfigMaps cannot. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

_HEADER = {"alg": "dir", "enc": "A256GCM"}


def _key(secret: str) -> OctKey:
    return OctKey.import_key(hashlib.sha256(b"podgate.oidc-refresh\0" + secret.encode()).digest())


class Sealer:
    """Seals with the first secret, opens with any (key rotation)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._keys = [_key(s) for s in secrets if s]
        if not self._keys:
            raise ValueError("sealing refresh tokens needs a secret")

    def seal(self, text: str) -> str:
        return jwe.encrypt_compact(_HEADER, text.encode("utf-8"), self._keys[0])

    def open(self, sealed: str) -> str | None:
        """The text, or None when no key opens it (another secret, or tampered)."""
        for key in self._keys:
            try:
                plaintext = jwe.decrypt_compact(sealed, key).plaintext
            except (JoseError, ValueError):
                continue
            if plaintext is not None:
                return plaintext.decode("utf-8", "replace")
        return None
