"""OAuthGrants: the authorization codes and access tokens podgate's hub issues to user servers.

Both are signed, self-contained values (HMAC-SHA256 under a key derived from
the cookie secrets; the first signs, every one verifies, so keys rotate as
the sessions' do). Any replica can check what another issued, with nothing
stored: a code carries its user, client, redirect URI, PKCE challenge,
expiry and a nonce; an access token its user, client and issue time. What
must be shared is only which codes were spent (control.oauth_codes), and
sign-outs, which end access tokens through the session gate like cookies.

A code and a token are told apart by a prefix the MAC covers, and the key
is not the session cookie's, so neither passes for the other or for a
session. Pure: no I/O; times are passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CODE_PREFIX = "pgc1"
TOKEN_PREFIX = "pga1"
CODE_SECONDS = 120.0  # a browser follows the redirect at once; replay windows stay short
TOKEN_SECONDS = 14 * 24 * 3600.0  # as a session: the server's cookie outlives neither
MAX_GRANT_LENGTH = 4096
CLOCK_SKEW = 30.0


class GrantError(Exception):
    """A code or token that is not (or no longer) good; the message says why."""


@dataclass(frozen=True)
class Code:
    user: str  # who signed in and allowed it
    client_id: str
    redirect_uri: str
    challenge: str | None  # PKCE S256 challenge the server sent, if any
    nonce: str  # spent once (control.oauth_codes)
    expires: float


@dataclass(frozen=True)
class AccessGrant:
    user: str
    client_id: str
    issued: float
    expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: base64url(SHA-256(verifier)) without padding."""
    return _b64(hashlib.sha256(verifier.encode("ascii", "replace")).digest())


class OAuthGrants:
    def __init__(
        self,
        cookie_secrets: Sequence[str],
        *,
        code_seconds: float = CODE_SECONDS,
        token_seconds: float = TOKEN_SECONDS,
    ) -> None:
        if not cookie_secrets:
            raise ValueError("OAuth grants need at least one secret")
        self._keys = [
            hmac.new(s.encode("utf-8"), b"podgate oauth grants v1", hashlib.sha256).digest()
            for s in cookie_secrets
        ]
        self.code_seconds = code_seconds
        self.token_seconds = token_seconds

    # -- signing ---------------------------------------------------------------------

    def _sign(self, prefix: str, payload: dict[str, Any]) -> str:
        body = f"{prefix}.{_b64(json.dumps(payload, separators=(',', ':')).encode())}"
        mac = hmac.new(self._keys[0], body.encode("ascii"), hashlib.sha256).digest()
        return f"{body}.{_b64(mac)}"

    def _open(self, prefix: str, value: str) -> dict[str, Any]:
        if not value or len(value) > MAX_GRANT_LENGTH or value.count(".") != 2:
            raise GrantError("malformed")
        body, _, mac_text = value.rpartition(".")
        if not body.startswith(prefix + "."):
            raise GrantError("not of this kind")
        try:
            mac = _unb64(mac_text)
            payload = json.loads(_unb64(body.partition(".")[2]))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise GrantError("malformed") from None
        wanted = [hmac.new(k, body.encode("ascii"), hashlib.sha256).digest() for k in self._keys]
        if not any(hmac.compare_digest(mac, w) for w in wanted) or not isinstance(payload, dict):
            raise GrantError("not issued by this hub")
        return payload

    # -- codes -----------------------------------------------------------------------

    def issue_code(
        self, user: str, client_id: str, redirect_uri: str, challenge: str | None, now: float
    ) -> str:
        payload = {
            "u": user,
            "c": client_id,
            "r": redirect_uri,
            "p": challenge,
            "n": secrets.token_urlsafe(16),
            "e": now + self.code_seconds,
        }
        return self._sign(CODE_PREFIX, payload)

    def read_code(self, value: str, now: float) -> Code:
        """The code's grant; GrantError if forged, malformed or expired (spent: not here)."""
        p = self._open(CODE_PREFIX, value)
        try:
            code = Code(str(p["u"]), str(p["c"]), str(p["r"]), p["p"], str(p["n"]), float(p["e"]))
        except (KeyError, TypeError, ValueError):
            raise GrantError("malformed") from None
        if code.challenge is not None and not isinstance(code.challenge, str):
            raise GrantError("malformed")
        if now >= code.expires:
            raise GrantError("expired")
        return code

    # -- access tokens ---------------------------------------------------------------

    def issue_token(self, user: str, client_id: str, now: float) -> str:
        payload = {"u": user, "c": client_id, "i": now, "n": secrets.token_urlsafe(8)}
        return self._sign(TOKEN_PREFIX, payload)

    def read_token(self, value: str, now: float) -> AccessGrant | None:
        """The token's grant, or None (forged, malformed, expired, or another kind)."""
        try:
            p = self._open(TOKEN_PREFIX, value)
            issued = float(p["i"])
            grant = AccessGrant(str(p["u"]), str(p["c"]), issued, issued + self.token_seconds)
        except (GrantError, KeyError, TypeError, ValueError):
            return None
        # Replicas' clocks differ a little: a token another one just issued is good here.
        return grant if grant.issued <= now + CLOCK_SKEW < grant.expires + CLOCK_SKEW else None
