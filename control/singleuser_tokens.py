"""ServerTokens: whose server a JUPYTERHUB_API_TOKEN is, from the pods every replica watches.

A hub-API pod carries its token in its env (control.singleuser_env), as the
edge's pod token always travelled. This listener of the pod informer keeps
the SHA-256 digest of each such token against its pod's user, so a replica
that just started, or another one, knows every server's token from
list+watch: nothing to store elsewhere, and a deleted pod's token stops
working with the DELETED event. Only digests are held; a lookup hashes the
presented token and does one dict lookup. No I/O.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from control.kube import Object
from control.manifests import pod_user
from control.singleuser_env import API_TOKEN_ENV

MAX_TOKEN_LENGTH = 4096  # longer is no token of ours; refused before hashing


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def pod_hub_token(pod: Object) -> str | None:
    """The JUPYTERHUB_API_TOKEN a pod was given, if it runs against the hub API."""
    for container in (pod.get("spec") or {}).get("containers") or ():
        for var in container.get("env") or ():
            if var.get("name") == API_TOKEN_ENV and isinstance(var.get("value"), str):
                return str(var["value"]) or None
    return None


class ServerTokens:
    """The pod informer's listener (`observe`): token digest -> the user whose server has it."""

    def __init__(self) -> None:
        self._users: dict[bytes, str] = {}
        self._by_pod: dict[str, bytes] = {}  # pod name -> its token's digest
        self._servers: Counter[str] = Counter()  # user -> how many of their pods have one

    def observe(self, kind: str, pod: Object, old: Object | None) -> None:
        name = str((pod.get("metadata") or {}).get("name") or "")
        known = self._by_pod.pop(name, None)
        if known is not None:
            owner = self._users.pop(known, None)
            if owner is not None:
                self._servers[owner] -= 1
                if self._servers[owner] <= 0:
                    del self._servers[owner]
        if kind == "DELETED":
            return
        user, token = pod_user(pod), pod_hub_token(pod)
        if user is None or token is None:
            return
        digest = _digest(token)
        self._users[digest] = user
        self._by_pod[name] = digest
        self._servers[user] += 1

    def user_of(self, token: str) -> str | None:
        """The user whose running (or starting) server holds `token`; None for any other."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        return self._users.get(_digest(token))

    def has_server(self, user: str) -> bool:
        """Whether `user` has a pod that runs against the hub API (an OAuth client exists)."""
        return user in self._servers
