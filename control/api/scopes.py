"""JupyterHub's scope names for API tokens, and what each one implies.

A token is configured with scope names; `expand` turns them into every
scope they grant (JupyterHub's hierarchy: `admin:users` grants `users`,
which grants `read:users`, and so on; `admin` grants everything).
Pure data: no I/O, and it never decides who a caller is.
"""

from __future__ import annotations

from collections.abc import Iterable

# Each scope and the scopes it directly implies.
IMPLIES: dict[str, tuple[str, ...]] = {
    "admin": (
        "admin:users",
        "admin:servers",
        "access:servers",
    ),
    "admin:users": ("users", "delete:users", "list:users", "read:users", "tokens"),
    "users": ("read:users", "list:users", "users:activity"),
    "read:users": ("read:users:name", "read:users:activity"),
    "list:users": ("read:users:name",),
    "delete:users": (),
    "users:activity": ("read:users:activity",),
    "read:users:name": (),
    "read:users:activity": (),
    "admin:servers": ("servers", "admin:server_state"),
    "servers": ("read:servers", "start:servers", "delete:servers"),
    "read:servers": ("read:users:name",),
    "start:servers": (),
    "delete:servers": (),
    "admin:server_state": (),
    # Personal API tokens (/hub/token, /hub/api/users/<name>/tokens).
    "tokens": ("read:tokens",),
    "read:tokens": (),
    # Using a server through the edge (and a jupyterhub-singleuser server's own check).
    "access:servers": (),
}

KNOWN_SCOPES = frozenset(IMPLIES)

# What a signed-in user may do with their own server and name (JupyterHub's "user" role).
OWN_SCOPES: tuple[str, ...] = ("read:users", "list:users", "servers", "tokens", "access:servers")


def unknown_scopes(names: Iterable[str]) -> list[str]:
    """The names that are not scopes podgate knows, in the order given."""
    return [name for name in names if name not in KNOWN_SCOPES]


def expand(names: Iterable[str]) -> frozenset[str]:
    """Every scope granted by `names`; unknown names grant nothing."""
    granted: set[str] = set()
    pending = [name for name in names if name in KNOWN_SCOPES]
    while pending:
        scope = pending.pop()
        if scope not in granted:
            granted.add(scope)
            pending.extend(IMPLIES[scope])
    return frozenset(granted)
