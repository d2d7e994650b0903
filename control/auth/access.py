"""Who may use podgate once authenticated, and who is an admin.

Names from the config are normalised like typed ones ("Ada" is "ada"); a
name that can never be a user stops the build with ValueError naming it.
Pure data: no I/O, and it never authenticates anyone itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from control.errors import BadUserName
from control.names import normalise_username


class UserAccess:
    """The allowed and admin users; an empty allowed list lets in everyone who authenticates."""

    def __init__(self, allowed_users: Iterable[str] = (), admins: Iterable[str] = ()) -> None:
        self.allowed_users = frozenset(_normalised(n, "allowed_users") for n in allowed_users)
        self.admins = frozenset(_normalised(n, "admins") for n in admins)

    def is_allowed(self, name: str) -> bool:
        """Whether the (already authenticated) user may log in; admins always may."""
        user = _normalised_or_none(name)
        if user is None:
            return False
        return not self.allowed_users or user in self.allowed_users or user in self.admins

    def is_admin(self, name: str) -> bool:
        user = _normalised_or_none(name)
        return user is not None and user in self.admins


def _normalised(raw: str, key: str) -> str:
    try:
        return normalise_username(raw)
    except BadUserName as e:
        raise ValueError(f"{key}: {raw!r} is not a valid user name: {e}") from None


def _normalised_or_none(raw: str) -> str | None:
    try:
        return normalise_username(raw)
    except BadUserName:
        return None
