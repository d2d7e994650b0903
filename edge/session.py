"""Signed session cookies: issue a value naming a user, verify one from a request.

The cookie is stateless: ``<base64url user>.<base64url timestamp>.<signature>``
signed with itsdangerous (HMAC-SHA256). Several secrets are accepted so keys
can be rotated; the FIRST secret signs. Verified values are kept in a bounded
LRU keyed by the raw cookie value, so the hot path pays for one HMAC per
cookie, not per request; a cached value is still rejected once it expires.
A session carries its issue time (whole seconds, itsdangerous's timestamp)
so that whoever holds the sign-out records can refuse sessions issued before
a user's sign-out: that check is the caller's (edge.app's SessionPolicy),
made on every request, so this cache never outlives a revocation.

Values refused at the signature check are kept too, in an LRU of their own
(so junk never evicts a good session): a stale cookie a browser keeps sending
costs one check, not one per request. The caller bounds how many values of a
request it hands in (edge.headers.MAX_SESSION_VALUES).

``verify`` must never raise anything but InvalidSession, whatever the input:
a bad cookie is "no session", never a 500. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

# Browsers cap a cookie near 4 KiB; anything longer was not issued by us and
# is refused before any hashing, so huge values cost nothing.
MAX_COOKIE_LENGTH = 4096

# Salt separates these signatures from anything else signed with the same secret.
_SALT = "podgate.session"

# Three dot-separated base64url fields: the only shape issue() produces.
_SHAPE = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")

REASONS = ("malformed", "bad_signature", "expired")


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    expires: float  # epoch seconds
    issued: float  # epoch seconds, whole: when issue() signed it


class InvalidSession(Exception):
    """A cookie that does not authenticate anyone; `reason` is one of REASONS."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _encode_user(user: str) -> str:
    return base64.urlsafe_b64encode(user.encode()).rstrip(b"=").decode("ascii")


def _decode_user(field: str) -> str:
    padded = field + "=" * (-len(field) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")


def _canonical(field: str) -> bool:
    """Whether `field` is the one base64url spelling of its bytes.

    base64 decoders ignore the unused low bits of the last character, so
    several texts decode to the same signature; only the one we issue counts,
    so no other text than an issued cookie ever authenticates.
    """
    try:
        raw = base64.urlsafe_b64decode(field + "=" * (-len(field) % 4))
    except (binascii.Error, ValueError):
        return False
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") == field


def _well_shaped(value: str) -> bool:
    """Whether `value` has the one shape issue() produces; no cryptography."""
    return (
        len(value) <= MAX_COOKIE_LENGTH
        and value.isascii()
        and _SHAPE.fullmatch(value) is not None
        and all(map(_canonical, value.split(".")))
    )


class SessionCodec:
    """Issues and verifies session cookie values; keeps bounded caches of outcomes."""

    def __init__(
        self,
        secrets: Sequence[str | bytes],
        *,
        max_age_seconds: float,
        cache_size: int = 10_000,
        refused_cache_size: int = 1024,
    ) -> None:
        keys = [s for s in secrets if s]
        if not keys or len(keys) != len(secrets):
            raise ValueError("session secrets must be a non-empty list of non-empty secrets")
        if max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be positive")
        if cache_size < 0 or refused_cache_size < 0:
            raise ValueError("cache sizes must not be negative")
        # itsdangerous signs with the LAST key and tries them all when verifying;
        # we want the first one to sign, so hand them over reversed.
        self._signer = TimestampSigner(
            list(reversed(keys)), salt=_SALT, digest_method=hashlib.sha256
        )
        self.max_age_seconds = max_age_seconds
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Session] = OrderedDict()
        # Refused values and why; at most MAX_COOKIE_LENGTH characters each.
        self._refused_size = refused_cache_size
        self._refused: OrderedDict[str, str] = OrderedDict()
        # Signature checks made (cache misses that passed the shape checks), for tests and stats.
        self.signature_checks = 0

    def issue(self, user: str) -> str:
        """The cookie value naming `user`, valid for max_age_seconds from now."""
        if not user:
            raise ValueError("a session needs a user name")
        value = self._signer.sign(_encode_user(user)).decode("ascii")
        if len(value) > MAX_COOKIE_LENGTH:
            raise ValueError("user name too long for a session cookie")
        return value

    def verify(self, value: str) -> Session:
        """The session `value` carries; raises InvalidSession (and nothing else) if none."""
        if not isinstance(value, str):
            raise InvalidSession("malformed")
        # The edge's thread and the hub's both verify: the caches change under one lock.
        with self._lock:
            return self._verify(value)

    def _verify(self, value: str) -> Session:
        cached = self._cache.get(value)
        if cached is not None:
            if time.time() > cached.expires:
                self._cache.pop(value, None)
                self._refuse(value, "expired")
                raise InvalidSession("expired")
            self._cache.move_to_end(value)
            return cached
        refused = self._refused.get(value)
        if refused is not None:
            self._refused.move_to_end(value)
            raise InvalidSession(refused)  # bad signatures and expiry never heal
        if not _well_shaped(value):
            raise InvalidSession("malformed")  # cheap to tell again: not kept
        try:
            session = self._unsign(value)
        except InvalidSession as e:
            self._refuse(value, e.reason)
            raise
        if self._cache_size:
            self._cache[value] = session
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return session

    def _refuse(self, value: str, reason: str) -> None:
        if self._refused_size:
            self._refused[value] = reason
            if len(self._refused) > self._refused_size:
                self._refused.popitem(last=False)

    def _unsign(self, value: str) -> Session:
        self.signature_checks += 1
        try:
            payload, signed_at = self._signer.unsign(
                value, max_age=self.max_age_seconds, return_timestamp=True
            )
        except SignatureExpired:
            raise InvalidSession("expired") from None
        except BadSignature:
            raise InvalidSession("bad_signature") from None
        except Exception:
            # itsdangerous on input we did not foresee: still only "no session".
            raise InvalidSession("malformed") from None
        try:
            user = _decode_user(payload.decode("ascii"))
        except (UnicodeDecodeError, binascii.Error, ValueError):
            raise InvalidSession("malformed") from None
        if not user:
            raise InvalidSession("malformed")
        issued = signed_at.timestamp()
        expires = issued + self.max_age_seconds
        # itsdangerous rounds ages to whole seconds; apply the same cut-off as
        # the cache does, so a value never comes back to life after eviction.
        if time.time() > expires:
            raise InvalidSession("expired")
        return Session(user=user, expires=expires, issued=issued)
