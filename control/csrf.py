"""CSRF tokens for the /hub/ forms, before and after login: a signed double-submit cookie.

The browser holds a random *binding* value in a cookie (`new_binding()`);
every form carries `token_for(binding)`, an HMAC of that value and the time
it was made, keyed with a server secret. A POST is accepted only when the
form's token matches the cookie's binding (`check`), and only for
`max_age_seconds` (default 12 hours) after the token was made.

Why that is enough here, without server-side state:
- A cross-site attacker can make the browser send the cookie, but cannot
  read it (same-origin policy, HttpOnly), so cannot compute or copy the
  token that must go in the form body, which they do choose.
- They cannot set the cookie from their own site either, and even a
  binding they plant by other means (a sibling subdomain, a network
  attacker on plain HTTP) needs a matching token, which only the server's
  secret makes. Tokens from another browser (swapped pairs) do not match.
- With SameSite=Lax or Strict the cookie is not even sent on cross-site
  POSTs in current browsers: the token is the defence for the rest.
Residual risk: an attacker who controls a sibling subdomain can plant a
binding together with a token they obtained themselves; pass the session's
user name as `context` after login so a token only works for that session.

What the web layer must do: set the binding cookie HttpOnly, SameSite=Lax
(or Strict), Secure when served over TLS, Path=/hub/; make a new binding
when the cookie is missing or malformed; put the token in a hidden input on
every form and check it before acting on any POST (login and logout too).

Pure: no I/O, no aiohttp. `check` never raises, whatever it is given.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Sequence

_BINDING_BYTES = 32
_MAX_FIELD = 256
# Leeway for a token made by another replica whose clock runs a little ahead.
_CLOCK_SKEW = 60.0
_TOKEN = re.compile(r"^([0-9a-f]{1,12})\.([A-Za-z0-9_-]{43})$")
_BINDING = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


class CsrfTokens:
    """Makes and checks CSRF tokens bound to a cookie value, signed with the first secret.

    `previous` secrets still verify (key rotation, like the session cookie).
    The key is derived from the secret for this use only, so sharing the
    cookie secret with sessions lets neither be forged from the other.
    """

    def __init__(
        self,
        secret: bytes | str,
        *,
        previous: Sequence[bytes | str] = (),
        max_age_seconds: float = 12 * 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("CsrfTokens needs a non-empty secret")
        self._keys = [_derive_key(s) for s in (secret, *previous)]
        self.max_age_seconds = max_age_seconds
        self._clock = clock

    @staticmethod
    def new_binding() -> str:
        """A fresh random value for the browser's CSRF cookie."""
        return secrets.token_urlsafe(_BINDING_BYTES)

    @staticmethod
    def valid_binding(value: object) -> bool:
        """Whether a cookie value can be a binding; the web layer makes a new one if not."""
        return isinstance(value, str) and bool(_BINDING.match(value))

    def token_for(self, binding: str, context: str = "") -> str:
        """The token a form carries for this cookie value (and session `context`, if any)."""
        issued = f"{int(self._clock()):x}"
        return f"{issued}.{_mac(self._keys[0], binding, context, issued)}"

    def check(self, binding: object, token: object, context: str = "") -> bool:
        """Whether `token` was made here for `binding` (and `context`) and has not expired.

        Constant-time; False for anything malformed, missing or of the wrong type.
        """
        if not isinstance(binding, str) or not isinstance(token, str):
            return False
        if len(token) > _MAX_FIELD or not self.valid_binding(binding):
            return False
        match = _TOKEN.match(token)
        if not match:
            return False
        issued, mac = match.groups()
        age = self._clock() - int(issued, 16)
        if not -_CLOCK_SKEW <= age <= self.max_age_seconds:
            return False
        ok = False
        for key in self._keys:  # every key, so the time taken does not say which matched
            ok |= hmac.compare_digest(_mac(key, binding, context, issued), mac)
        return ok


def _derive_key(secret: bytes | str) -> bytes:
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not raw:
        raise ValueError("CsrfTokens: a secret is empty")
    return hmac.new(raw, b"podgate csrf token key", hashlib.sha256).digest()


def _mac(key: bytes, binding: str, context: str, issued: str) -> str:
    # NUL-separated: none of the parts can hold one that shifts the boundary unnoticed
    # (binding and issued are checked; context is the user name).
    message = "\0".join(("csrf", binding, context, issued)).encode("utf-8", "surrogatepass")
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
