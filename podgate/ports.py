"""Checking, before anything starts, that the public and ops addresses can be listened on.

A taken port is the commonest first-run failure; found only when the servers
bind, it came after the embedded cluster had started and a fresh password
had been printed, with an OS message that named no address. This module
tries each configured address first and says which one, under which config
key. The real bind later can still lose a race; the assembly names the key
then too (ListenFailed). It never keeps a socket open.
"""

from __future__ import annotations

import errno
import socket


class ListenFailed(Exception):
    """An address of the config cannot be listened on: which key, which address, why."""

    def __init__(self, key: str, host: str, port: int, error: OSError) -> None:
        self.key, self.host, self.port, self.error = key, host, port, error
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if error.errno == errno.EADDRINUSE:
            why = "the address is already in use (is another podgate running?)"
        elif error.errno == errno.EACCES:
            why = "permission denied (ports below 1024 need privileges)"
        else:
            why = error.strerror or str(error)
        super().__init__(f"cannot listen on {shown} ({key}): {why}; set {key} in the config file")


def try_listen(key: str, host: str, port: int) -> None:
    """Bind and listen on host:port as the servers will, then let go; ListenFailed if not."""
    if port == 0:
        return  # any free port: nothing can be taken
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as sock:
            # As the servers bind (SO_REUSEADDR): a port in TIME_WAIT is not "taken".
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(1)
    except OSError as e:
        raise ListenFailed(key, host, port, e) from e


def check_addresses(addresses: dict[str, tuple[str, int]]) -> None:
    """try_listen each {config key: (host, port)}, in order."""
    for key, (host, port) in addresses.items():
        try_listen(key, host, port)
