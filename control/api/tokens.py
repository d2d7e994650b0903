"""API tokens: who a `Authorization: token …` header belongs to, and with which scopes.

Tokens come from the configuration and from a mounted file (a Kubernetes
Secret: a YAML list of {name, token, scopes}); only their SHA-256 digests
are kept in memory, and a presented token is compared with every digest in
constant time, so neither timing nor a memory dump gives a token away.
Pure: no aiohttp; the file is read once, when the wiring asks.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

from control.api.scopes import expand, unknown_scopes

MIN_TOKEN_LENGTH = 8
MAX_TOKEN_LENGTH = 4096  # longer headers are refused before hashing


class TokenSpec(Protocol):
    """One configured token (podgate.config.ApiToken has this shape)."""

    @property
    def name(self) -> str: ...

    @property
    def token(self) -> str: ...

    @property
    def scopes(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class TokenEntry:
    name: str
    token: str
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TokenOwner:
    """Who a token was issued to: its configured name and the scopes it grants (expanded)."""

    name: str
    scopes: frozenset[str]
    configured_scopes: tuple[str, ...]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class ApiTokens:
    """The accepted API tokens, as digests; `owner(token)` says whose a token is."""

    def __init__(self, specs: Iterable[TokenSpec] = ()) -> None:
        self._owners: list[tuple[bytes, TokenOwner]] = []
        for spec in specs:
            unknown = unknown_scopes(spec.scopes)
            if unknown:
                raise ValueError(f"api token {spec.name!r}: unknown scope {unknown[0]!r}")
            if len(spec.token) < MIN_TOKEN_LENGTH:
                raise ValueError(
                    f"api token {spec.name!r}: needs at least {MIN_TOKEN_LENGTH} characters"
                )
            owner = TokenOwner(spec.name, expand(spec.scopes), tuple(spec.scopes))
            self._owners.append((_digest(spec.token), owner))

    def __len__(self) -> int:
        return len(self._owners)

    def owner(self, token: str) -> TokenOwner | None:
        """The owner of `token`, or None; every digest is compared, whichever matches."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        presented = _digest(token)
        found = None
        for digest, owner in self._owners:
            if hmac.compare_digest(digest, presented) and found is None:
                found = owner
        return found


def read_tokens_file(path: str | Path) -> list[TokenEntry]:
    """The tokens listed in a YAML file; ValueError naming the file and entry if malformed."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read api tokens file {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ValueError(f"api tokens file {path} is not valid YAML") from e
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"api tokens file {path}: expected a list of {{name, token, scopes}}")
    entries = []
    for i, item in enumerate(data):
        where = f"api tokens file {path}, entry {i}"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected a mapping")
        extra = set(item) - {"name", "token", "scopes"}
        if extra:
            raise ValueError(f"{where}: unknown key {sorted(extra)[0]!r}")
        name, token, scopes = item.get("name"), item.get("token"), item.get("scopes", [])
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: name must be a non-empty string")
        if not isinstance(token, str):
            raise ValueError(f"{where}: token must be a string")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ValueError(f"{where}: scopes must be a list of scope names")
        entries.append(TokenEntry(name, token, tuple(scopes)))
    return entries
