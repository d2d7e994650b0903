"""Loopback addresses for pods: each pod gets its own 127.x.y.z as status.podIP.

Pure bookkeeping; never binds or probes a socket. 127.0.0.1 and 127.0.1.1
(the host's own names on many systems) are never handed out, nor addresses
ending in .0 or .255, so nothing that reads an address as a network or a
broadcast address is surprised.
"""

from __future__ import annotations

import heapq
import ipaddress

_FIRST = int(ipaddress.IPv4Address("127.0.0.2"))
_LAST = int(ipaddress.IPv4Address("127.255.255.254"))
_RESERVED = {int(ipaddress.IPv4Address("127.0.0.1")), int(ipaddress.IPv4Address("127.0.1.1"))}


class AddressesExhausted(RuntimeError):
    """Every loopback address is in use."""


class AddressPool:
    """Hands out unique loopback addresses; released ones are reused lowest first."""

    def __init__(self) -> None:
        self._next = _FIRST
        self._released: list[int] = []
        self._in_use: set[int] = set()

    def allocate(self) -> str:
        value = heapq.heappop(self._released) if self._released else self._fresh()
        self._in_use.add(value)
        return str(ipaddress.IPv4Address(value))

    def release(self, address: str) -> None:
        value = int(ipaddress.IPv4Address(address))
        if value in self._in_use:
            self._in_use.remove(value)
            heapq.heappush(self._released, value)

    def in_use(self) -> int:
        return len(self._in_use)

    def _fresh(self) -> int:
        while self._next <= _LAST:
            value = self._next
            self._next += 1
            if value in _RESERVED or value & 0xFF in (0, 255):
                continue
            return value
        raise AddressesExhausted("no free loopback address left for a pod")
