"""Who the users are: everyone the configuration names, everyone with a server,
everyone with a user record, and everyone who signed in or was created
through the API since this process started.

The configuration, the pods and the user records (control.user_records: a
ConfigMap per user who signed in or was created, at any replica) are the same
for every replica, so every replica lists the same users; the remembered ones
only cover a record that could not be written. Plain data: no I/O; the
informers' caches are read, never written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from control.names import normalise_username

# Users remembered from sign-ins and API creation, beyond the configured ones.
MAX_REMEMBERED = 200_000
_NO_RECORDS: frozenset[str] = frozenset()


class UserDirectory:
    """The set of user names, sorted on demand and cached until it changes."""

    def __init__(
        self,
        configured: Iterable[str] = (),
        *,
        server_users: Callable[[], Iterable[str]] = tuple,
        recorded_users: Callable[[], frozenset[str]] = lambda: _NO_RECORDS,
    ) -> None:
        """`configured`: names from the config (users, admins, allowed users);
        `server_users`: the users who have a pod now (read from the pod informer);
        `recorded_users`: the users with a record (the same object until one changes).
        """
        self._configured = frozenset(normalise_username(n) for n in configured)
        self._remembered: dict[str, None] = {}
        self._server_users = server_users
        self._recorded_users = recorded_users
        self._sorted: list[str] | None = None
        self._server_snapshot: frozenset[str] = frozenset()
        self._recorded_snapshot = _NO_RECORDS

    def replace_configured(self, configured: Iterable[str]) -> None:
        """A config reload named these users; remembered ones stay remembered."""
        self._configured = frozenset(normalise_username(n) for n in configured)
        self._sorted = None

    def remember(self, name: str) -> None:
        """A user signed in or was created; the oldest are forgotten past MAX_REMEMBERED."""
        if name in self._configured or name in self._remembered:
            return
        self._remembered[name] = None
        if len(self._remembered) > MAX_REMEMBERED:
            del self._remembered[next(iter(self._remembered))]
        self._sorted = None

    def forget(self, name: str) -> bool:
        """Drop a remembered user (configured users and users with a server stay)."""
        if self._remembered.pop(name, 0) is None:
            self._sorted = None
            return True
        return False

    def is_configured(self, name: str) -> bool:
        return name in self._configured

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name in self._configured
            or name in self._remembered
            or name in self._recorded_users()
            or name in self._servers()
        )

    def __len__(self) -> int:
        return len(self.names())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        """Every user name, sorted (a shared list: do not change it)."""
        servers, recorded = self._servers(), self._recorded_users()
        # The records' set is rebuilt only when one changes: identity says "unchanged".
        if (
            self._sorted is None
            or servers != self._server_snapshot
            or recorded is not self._recorded_snapshot
        ):
            self._server_snapshot, self._recorded_snapshot = servers, recorded
            self._sorted = sorted(self._configured | self._remembered.keys() | servers | recorded)
        return self._sorted

    def _servers(self) -> frozenset[str]:
        return frozenset(self._server_users())
