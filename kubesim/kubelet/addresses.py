"""Loopback addresses for pods: each pod gets its own 127.x.y.z as status.podIP.

Pure bookkeeping; never binds or probes a socket. 127.0.0.1 and 127.0.1.1
(the host's own names on many systems) are never handed out, nor addresses
ending in .0 or .255, so nothing that reads an address as a network or a
broadcast address is surprised.

Every kubesim on a machine shares 127.0.0.0/8, so by default a pool starts
at a random address of 127.2.0.0-127.254.255.255 and wraps around: two
kubesims running at once (two test runs, a dev podgate next to a test run)
hand out disjoint addresses unless their pods number in the millions.
"""

from __future__ import annotations

import heapq
import ipaddress
import random

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
# The default range leaves 127.0.x.x and 127.1.x.x to the host and to tools
# that hard-code them.
_DEFAULT_FIRST = int(ipaddress.IPv4Address("127.2.0.0"))
_DEFAULT_LAST = int(ipaddress.IPv4Address("127.254.255.255"))
_RESERVED = {int(ipaddress.IPv4Address("127.0.0.1")), int(ipaddress.IPv4Address("127.0.1.1"))}


class AddressesExhausted(RuntimeError):
    """Every loopback address of the pool is in use."""


class AddressPool:
    """Hands out unique loopback addresses; released ones are reused lowest first.

    network: the range to use ("127.9.0.0/16"), which must lie in 127.0.0.0/8;
    None: the whole default range from a random start. rng: where the random
    start comes from (seeded in tests that want a fixed one).
    """

    def __init__(self, network: str | None = None, rng: random.Random | None = None) -> None:
        if network is None:
            first, last = _DEFAULT_FIRST, _DEFAULT_LAST
        else:
            block = ipaddress.IPv4Network(network)
            if not block.subnet_of(LOOPBACK):
                raise ValueError(f"pod addresses must lie in {LOOPBACK}, not {block}")
            first, last = int(block.network_address), int(block.broadcast_address)
        self._first, self._last = first, last
        self._cursor = (rng or random.Random()).randint(first, last)
        self._unvisited = last - first + 1  # fresh addresses not yet looked at
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
        while self._unvisited > 0:
            value = self._cursor
            self._cursor = self._first if value == self._last else value + 1
            self._unvisited -= 1
            if value in _RESERVED or value & 0xFF in (0, 255):
                continue
            return value
        raise AddressesExhausted("no free loopback address left for a pod")
