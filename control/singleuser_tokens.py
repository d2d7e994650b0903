"""ServerTokens: whose server a JUPYTERHUB_API_TOKEN is, from the pods every replica watches.

A hub-API pod carries its token in its env (control.singleuser_env), as the
edge's pod token always travelled. This listener of the pod informer keeps
the SHA-256 digest of each such token against its pod's server (user and
server name), and each server's OAuth client id, so a replica
that just started, or another one, knows every server's token from
list+watch: nothing to store elsewhere, and a deleted pod's token stops
working with the DELETED event. Only digests are held; a lookup hashes the
presented token and does one dict lookup. No I/O.
"""

from __future__ import annotations

import hashlib

from control.kube import Object
from control.manifests import pod_key
from control.names import split_key
from control.singleuser_env import API_TOKEN_ENV, client_id

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
    """The pod informer's listener (`observe`): token digest -> the server (key) that has it."""

    def __init__(self) -> None:
        self._servers: dict[bytes, str] = {}  # token digest -> server key
        self._by_pod: dict[str, tuple[bytes, str]] = {}  # pod name -> (digest, client id)
        # OAuth client id -> server keys whose pods have a token; more than one key
        # (a user "a-b"'s default server and user "a"'s server "b") makes it ambiguous.
        self._clients: dict[str, set[str]] = {}

    def observe(self, kind: str, pod: Object, old: Object | None) -> None:
        name = str((pod.get("metadata") or {}).get("name") or "")
        known = self._by_pod.pop(name, None)
        if known is not None:
            key = self._servers.pop(known[0], None)
            holders = self._clients.get(known[1])
            if holders is not None and key is not None:
                holders.discard(key)
                if not holders:
                    del self._clients[known[1]]
        if kind == "DELETED":
            return
        key, token = pod_key(pod), pod_hub_token(pod)
        if key is None or token is None:
            return
        digest = _digest(token)
        user, server = split_key(key)
        client = client_id(user, server)
        self._servers[digest] = key
        self._by_pod[name] = (digest, client)
        self._clients.setdefault(client, set()).add(key)

    def server_of(self, token: str) -> str | None:
        """The server key (names.server_key) whose running (or starting) pod holds `token`."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        return self._servers.get(_digest(token))

    def user_of(self, token: str) -> str | None:
        """The user whose server holds `token`; None for any other token."""
        key = self.server_of(token)
        return split_key(key)[0] if key is not None else None

    def client_server(self, client: str) -> str | None:
        """The server key of OAuth client `client`, while its hub-API pod exists; None if
        there is none, or two servers would share the id (refused rather than guessed)."""
        holders = self._clients.get(client)
        if holders is None or len(holders) != 1:
            return None
        return next(iter(holders))

    def has_server(self, user: str) -> bool:
        """Whether `user`'s default server has a pod that runs against the hub API."""
        return self.client_server(client_id(user)) == user
