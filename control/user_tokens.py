"""Personal API tokens: what users make at /hub/token, kept as digests in their record.

A token is a random secret shown once, when it is made. What is kept is its
SHA-256 digest with its note, scopes, creation and expiry, as one entry of
the data of the user's record ConfigMap (control.user_records) under
`token.<id>`, which every replica already watches: the record informer
feeds `observe`, so a token made at one replica works at all of them, and a
revoked one (its entry set to null by a merge patch) stops at all of them
within a watch event. Each token is its own key, so two writes never
overwrite each other. The secret never reaches a pod spec, a log or
Kubernetes; a lookup hashes the presented token and does one dict probe.

Tokens are high-entropy random strings, so an unsalted SHA-256 cannot be
turned back into one. Expired entries are dropped by the next write to the
same user's tokens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from control import names
from control.errors import AlreadyExists, NotFound
from control.kube import Kube, Object
from control.user_records import parse_record, record_manifest

log = logging.getLogger(__name__)

KEY_PREFIX = "token."
MAX_TOKEN_LENGTH = 4096  # longer is no token of ours; refused before hashing
MAX_NOTE_LENGTH = 200
MAX_TOKENS_PER_USER = 100  # a ConfigMap holds at most 1 MiB; each entry is ~300 bytes


@dataclass(frozen=True, slots=True)
class UserToken:
    """One personal token as stored: never the secret itself."""

    id: str
    user: str
    digest: str  # SHA-256 of the token, hex
    note: str
    scopes: tuple[str, ...]
    created: float
    expires_at: float | None  # epoch seconds; None: never

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _entry(token: UserToken) -> str:
    return json.dumps(
        {
            "digest": token.digest,
            "note": token.note,
            "scopes": list(token.scopes),
            "created": token.created,
            "expires_at": token.expires_at,
        },
        separators=(",", ":"),
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def parse_tokens(obj: Object) -> list[UserToken]:
    """The tokens a record ConfigMap lists (entries that do not parse are skipped)."""
    record = parse_record(obj)
    if record is None:
        return []
    found = []
    for key, text in (obj.get("data") or {}).items():
        if not key.startswith(KEY_PREFIX) or not isinstance(text, str):
            continue
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        digest, scopes = data.get("digest"), data.get("scopes")
        created = _number(data.get("created"))
        if not isinstance(digest, str) or not isinstance(scopes, list) or created is None:
            continue
        found.append(
            UserToken(
                id=key[len(KEY_PREFIX) :],
                user=record.user,
                digest=digest,
                note=str(data.get("note") or ""),
                scopes=tuple(str(s) for s in scopes),
                created=created,
                expires_at=_number(data.get("expires_at")),
            )
        )
    return found


class UserTokens:
    """The record informer's listener (`observe`) plus the writes that make and revoke tokens."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self._kube = kube
        self._namespace = namespace
        self._by_digest: dict[str, UserToken] = {}
        self._by_user: dict[str, dict[str, UserToken]] = {}

    # -- reading (no I/O) ----------------------------------------------------------

    def find(self, token: str) -> UserToken | None:
        """The stored token `token` is, expired or not; None for any other string."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        return self._by_digest.get(digest_of(token))

    def of_user(self, user: str) -> list[UserToken]:
        """`user`'s tokens, oldest first."""
        return sorted(self._by_user.get(user, {}).values(), key=lambda t: (t.created, t.id))

    def get(self, user: str, token_id: str) -> UserToken | None:
        return self._by_user.get(user, {}).get(token_id)

    def observe(self, kind: str, obj: Object, old: Object | None) -> None:
        record = parse_record(obj)
        if record is None:
            return
        for known in self._by_user.pop(record.user, {}).values():
            self._by_digest.pop(known.digest, None)
        if kind == "DELETED":
            return
        tokens = {t.id: t for t in parse_tokens(obj)}
        if tokens:
            self._by_user[record.user] = tokens
            self._by_digest.update((t.digest, t) for t in tokens.values())

    # -- writing -------------------------------------------------------------------

    async def create(
        self,
        user: str,
        *,
        note: str,
        scopes: Sequence[str],
        expires_in: float | None,
        now: float,
    ) -> tuple[str, UserToken]:
        """Make a token for `user`: (the secret, shown once; what is stored). KubeError if
        the record could not be written (then the token does not exist anywhere)."""
        secret = secrets.token_hex(32)
        made = UserToken(
            id="a" + secrets.token_hex(8),
            user=user,
            digest=digest_of(secret),
            note=note,
            scopes=tuple(scopes),
            created=now,
            expires_at=now + expires_in if expires_in is not None else None,
        )
        data: dict[str, str | None] = {KEY_PREFIX + made.id: _entry(made)}
        for old in self.of_user(user):
            if old.expired(now):
                data[KEY_PREFIX + old.id] = None  # tidy: expired entries go with this write
        await self._write(user, data, now)
        return secret, made

    async def revoke(self, user: str, token_id: str, now: float) -> None:
        """Remove one of `user`'s tokens at every replica (KubeError if the write fails)."""
        await self._write(user, {KEY_PREFIX + token_id: None}, now)

    async def _write(self, user: str, data: dict[str, str | None], now: float) -> None:
        name = names.record_name(user)
        patch: dict[str, Any] = {"data": data}
        try:
            answer = await self._kube.patch("configmaps", self._namespace, name, patch)
        except NotFound:
            new = record_manifest(user, now=now, signed_in=False)
            new["data"].update({k: v for k, v in data.items() if v is not None})
            try:
                answer = await self._kube.create("configmaps", self._namespace, new)
            except AlreadyExists:  # made a moment ago elsewhere
                answer = await self._kube.patch("configmaps", self._namespace, name, patch)
        # Seen here at once; the watch brings the same to the other replicas.
        self.observe("MODIFIED", answer, None)
