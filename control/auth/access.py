"""Who may use podgate once authenticated, and who is an admin: by name, and by group.

Names from the config are normalised like typed ones ("Ada" is "ada"); a
name that can never be a user stops the build with ValueError naming it.
Groups come from the identity provider (auth.oidc.allowed_groups and
admin_groups): a user's current groups are looked up with `groups_of`
(the per-user records every replica shares), or passed in at sign-in.
Pure data and lookups: no I/O, and it never authenticates anyone itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from control.errors import BadUserName
from control.names import normalise_username

GroupsOf = Callable[[str], frozenset[str]]


def _no_groups(user: str) -> frozenset[str]:
    return frozenset()


class UserAccess:
    """Allowed and admin users and groups; with neither users nor groups listed, everyone
    who authenticates is allowed."""

    def __init__(
        self,
        allowed_users: Iterable[str] = (),
        admins: Iterable[str] = (),
        *,
        allowed_groups: Iterable[str] = (),
        admin_groups: Iterable[str] = (),
        groups_of: GroupsOf | None = None,
    ) -> None:
        self.allowed_users = frozenset(_normalised(n, "allowed_users") for n in allowed_users)
        self.admins = frozenset(_normalised(n, "admins") for n in admins)
        self.allowed_groups = frozenset(allowed_groups)
        self.admin_groups = frozenset(admin_groups)
        self.groups_of: GroupsOf = groups_of or _no_groups

    @property
    def by_group(self) -> bool:
        """Whether any decision depends on groups (then names alone do not decide)."""
        return bool(self.allowed_groups or self.admin_groups)

    @property
    def restricted(self) -> bool:
        """Whether only listed users or group members may sign in."""
        return bool(self.allowed_users or self.allowed_groups)

    def is_allowed(self, name: str, groups: frozenset[str] | None = None) -> bool:
        """Whether the (already authenticated) user may log in; admins always may.

        `groups`: the user's groups as the provider just said; else the recorded ones.
        """
        user = _normalised_or_none(name)
        if user is None:
            return False
        if not self.restricted or user in self.allowed_users or user in self.admins:
            return True
        if not self.by_group:
            return False
        member_of = self.groups_of(user) if groups is None else groups
        return bool(member_of & (self.allowed_groups | self.admin_groups))

    def is_admin(self, name: str, groups: frozenset[str] | None = None) -> bool:
        user = _normalised_or_none(name)
        if user is None:
            return False
        if user in self.admins:
            return True
        if not self.admin_groups:
            return False
        return bool((self.groups_of(user) if groups is None else groups) & self.admin_groups)


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
