"""SessionGate: whether a verified session still lets its user in, asked on every request.

A session counts while its user is allowed by the running config (the
allowed users and admins, or, with allowed groups, the groups the user's
record holds; with the password authenticator, the user still has an
entry) and it was issued no earlier than the user's last sign-out
everywhere (control.record_store). The edge asks it through its
SessionPolicy protocol and the hub through Hub.user, so a reload or a
sign-out applies to the very next request, cached cookies included.

`admits` is a few dict and set lookups: it runs on the proxy's hot path.
Names in cookies are already normalised (only those are ever issued). It
never does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Protocol

from control.auth import UserAccess


class SignOuts(Protocol):
    def not_before(self, user: str) -> float: ...


class _NoSignOuts:
    def not_before(self, user: str) -> float:
        return 0.0


class SessionGate:
    """The admission rule for sessions; `update` swaps the config's part at a reload."""

    def __init__(
        self,
        access: UserAccess,
        accounts: Collection[str] | None = None,
        sign_outs: SignOuts | None = None,
    ) -> None:
        self._sign_outs = sign_outs or _NoSignOuts()
        # Told when sessions may have ended (the edge then rechecks open WebSockets).
        self.on_change: Callable[[], None] | None = None
        self.update(access, accounts)

    def update(self, access: UserAccess, accounts: Collection[str] | None) -> None:
        """The running config's users: `accounts` None means the authenticator cannot
        list them (anyone it vouches for may exist), else only those users exist."""
        # Built whole, then swapped: a request sees the old rule or the new one.
        allowed = access.allowed_users | access.admins if access.allowed_users else None
        # Allowed groups: names alone do not decide; the user's recorded groups do.
        by_group = access if access.by_group and access.restricted else None
        self._rule = (allowed, frozenset(accounts) if accounts is not None else None, by_group)
        self.changed()

    def changed(self) -> None:
        """Sessions may have ended: a sign-out everywhere arrived, or the config changed."""
        if self.on_change is not None:
            self.on_change()

    def admits(self, user: str, issued: float) -> bool:
        allowed, accounts, by_group = self._rule
        if by_group is not None:
            if not by_group.is_allowed(user):
                return False
        elif allowed is not None and user not in allowed:
            return False
        if accounts is not None and user not in accounts:
            return False
        return issued >= self._sign_outs.not_before(user)
