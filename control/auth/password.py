"""The password authenticator: user names and their hashes, from the config or a mounted Secret.

Every hash is checked for form when the authenticator is built, so a typo in
the config stops the start naming the user instead of failing a login later.
A login costs one hash verification whether or not the user exists (timing
must not tell who has an account), and verifications run in a worker thread:
they take 50-250 ms by design and must never block the event loop.
Never logs a password or a hash.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import yaml

from control.auth.hashes import hash_password, hash_scheme, verify_password
from control.errors import BadUserName
from control.names import normalise_username

# Longer input is refused before hashing: no one types this, and it bounds the work.
MAX_PASSWORD_LENGTH = 1024


class PasswordAuthenticator:
    """Users and password hashes (scrypt, bcrypt or argon2), checked in constant time."""

    login_hint: str | None = None

    def __init__(self, users: Mapping[str, str]) -> None:
        if not users:
            raise ValueError("the password authenticator needs at least one user")
        self._hashes: dict[str, str] = {}
        for raw_name, hashed in users.items():
            name = _config_username(raw_name)
            if name in self._hashes:
                raise ValueError(f"user {raw_name!r} is listed twice (names ignore case)")
            try:
                hash_scheme(hashed)
            except ValueError as e:
                raise ValueError(f"user {raw_name!r}: the password hash {e}") from None
            self._hashes[name] = hashed
        # Unknown names are checked against this, in the scheme most users have,
        # so they take as long as known ones.
        common = Counter(hash_scheme(h) for h in self._hashes.values()).most_common(1)[0][0]
        self._decoy = hash_password(secrets.token_urlsafe(16), common)

    @property
    def usernames(self) -> frozenset[str]:
        """The normalised names that have a password."""
        return frozenset(self._hashes)

    async def authenticate(self, username: str, password: str) -> str | None:
        name = normalise_username(username)  # BadUserName for a name no one can have
        if not password or len(password) > MAX_PASSWORD_LENGTH:
            return None
        hashed = self._hashes.get(name)
        matches = await asyncio.to_thread(verify_password, hashed or self._decoy, password)
        return name if matches and hashed is not None else None


def read_users_file(path: str | Path) -> dict[str, str]:
    """The users in a mounted Secret: a YAML mapping, or "name: hash" lines.

    Blank lines and lines starting with # are skipped. ValueError names the
    file and what is wrong with it; the hashes are checked by the authenticator.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"users_file: cannot read {path}: {e}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        loaded = None
    if isinstance(loaded, dict):
        users: dict[str, str] = {}
        for name, hashed in loaded.items():
            if not isinstance(name, str) or not isinstance(hashed, str):
                raise ValueError(f"users_file: {path}: {name!r} needs a password hash string")
            users[name] = hashed
        return users
    return _read_lines(text, path)


def _read_lines(text: str, path: str | Path) -> dict[str, str]:
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        # User names never hold ":", hashes may not start with one: the first ":" splits.
        name, colon, hashed = line.partition(":")
        if not colon or not name.strip() or not hashed.strip():
            raise ValueError(f"users_file: {path}: line {number} is not `name: hash`")
        users[name.strip()] = hashed.strip()
    if not users:
        raise ValueError(f"users_file: {path}: no users in it")
    return users


def _config_username(raw: str) -> str:
    try:
        return normalise_username(raw)
    except BadUserName as e:
        raise ValueError(f"user {raw!r} is not a valid user name: {e}") from None
