"""Who the users are: everyone the configuration names, everyone with a server, and
everyone who signed in or was created through the API since this process started.

Kubernetes holds servers, not users, so a user with no server and no entry
in the configuration is known only to the replica that saw them (as a
JupyterHub without a database would); the configuration and the pods are
the same for every replica. Plain data: no I/O; the pod informer's cache is
read, never written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from control.names import normalise_username

# Users remembered from sign-ins and API creation, beyond the configured ones.
MAX_REMEMBERED = 200_000


class UserDirectory:
    """The set of user names, sorted on demand and cached until it changes."""

    def __init__(
        self,
        configured: Iterable[str] = (),
        *,
        server_users: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        """`configured`: names from the config (users, admins, allowed users);
        `server_users`: the users who have a pod now (read from the pod informer).
        """
        self._configured = frozenset(normalise_username(n) for n in configured)
        self._remembered: dict[str, None] = {}
        self._server_users = server_users
        self._sorted: list[str] | None = None
        self._server_snapshot: frozenset[str] = frozenset()

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
            name in self._configured or name in self._remembered or name in self._servers()
        )

    def __len__(self) -> int:
        return len(self.names())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        """Every user name, sorted (a shared list: do not change it)."""
        servers = self._servers()
        if self._sorted is None or servers != self._server_snapshot:
            self._server_snapshot = servers
            self._sorted = sorted(self._configured | self._remembered.keys() | servers)
        return self._sorted

    def _servers(self) -> frozenset[str]:
        return frozenset(self._server_users())
