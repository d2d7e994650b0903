"""Slowing down password guessing: failed logins counted per user name and per client address.

Each failure is remembered twice, under the user name tried and under the
client's address, for `window_seconds`. Once a key has `free_failures`
failures in the window, the next try must wait 1 s after the last failure,
then 2, 4, ... up to `max_delay_seconds`. `delay()` says how long is still
left to wait; the web layer answers "too many failed logins, try again in N
seconds" without checking the password while it is above zero (or sleeps it
off before checking). A success forgets only that user's failures from that
address, so an attacker guessing elsewhere stays slowed, and an address that
tried many names is not cleared by one right password.

A browser the user signed in from before (control.auth.known_browsers) is
not held back by the count under the user's name, only by its own
address's: failing in someone's name from elsewhere slows the guesser, never
the user at their own browser.

IPv6 clients are counted per /64 (one host often holds a whole /64).
Memory is bounded: at most `max_tracked` names and as many addresses, the
longest untouched evicted first, and per key no more failures than it takes
to reach the cap. In-memory and per replica; it never sleeps or does I/O.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from control.errors import BadUserName
from control.names import normalise_username

_KEY_CHARS = 64

# One remembered failure: when, and the other key (the address for a user, the user for an address).
_Failure = tuple[float, str]


class LoginThrottle:
    """Counts failed logins and says how long the next try from that user or address must wait."""

    def __init__(
        self,
        free_failures: int = 5,
        window_seconds: float = 600.0,
        max_delay_seconds: float = 30.0,
        *,
        max_tracked: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if free_failures < 0 or window_seconds <= 0 or max_delay_seconds < 0 or max_tracked < 1:
            raise ValueError("LoginThrottle: counts and the window must be positive")
        self.free_failures = free_failures
        self.window_seconds = window_seconds
        self.max_delay_seconds = max_delay_seconds
        self.max_tracked = max_tracked
        self._clock = clock
        # Failures beyond the point where the delay reaches its cap change nothing.
        doublings = math.ceil(math.log2(max_delay_seconds)) if max_delay_seconds > 1 else 0
        self._keep = free_failures + doublings + 1
        self._by_user: OrderedDict[str, deque[_Failure]] = OrderedDict()
        self._by_address: OrderedDict[str, deque[_Failure]] = OrderedDict()

    def delay(self, user: str, address: str, *, known_browser: bool = False) -> float:
        """Seconds the next try for `user` from `address` must still wait (0: go ahead).

        `known_browser`: the browser signed in as `user` before, so failures
        in that name from elsewhere do not hold it back.
        """
        now = self._clock()
        by_address = self._wait(self._by_address, _address_key(address), now)
        if known_browser:
            return by_address
        return max(self._wait(self._by_user, _user_key(user), now), by_address)

    @staticmethod
    def same_user(user: str, known: list[str]) -> bool:
        """Whether the name tried is one of `known` (names as the throttle counts them)."""
        key = _user_key(user)
        return any(_user_key(name) == key for name in known)

    def failed(self, user: str, address: str) -> None:
        """Remember a failed login (wrong password, unknown user, not allowed)."""
        now = self._clock()
        user_key, address_key = _user_key(user), _address_key(address)
        self._remember(self._by_user, user_key, (now, address_key))
        self._remember(self._by_address, address_key, (now, user_key))

    def succeeded(self, user: str, address: str) -> None:
        """Forget the user's failures from this address (their own typos), and nothing else."""
        user_key, address_key = _user_key(user), _address_key(address)
        self._forget(self._by_user, user_key, address_key)
        self._forget(self._by_address, address_key, user_key)

    @property
    def tracked(self) -> int:
        """How many user names and addresses are remembered (for metrics and tests)."""
        return len(self._by_user) + len(self._by_address)

    def _wait(self, table: OrderedDict[str, deque[_Failure]], key: str, now: float) -> float:
        failures = table.get(key)
        if failures is None:
            return 0.0
        self._expire(failures, now)
        if not failures:
            del table[key]
            return 0.0
        excess = len(failures) - self.free_failures
        if excess < 0:
            return 0.0
        backoff = min(self.max_delay_seconds, 2.0**excess)
        return max(0.0, failures[-1][0] + backoff - now)

    def _remember(
        self, table: OrderedDict[str, deque[_Failure]], key: str, failure: _Failure
    ) -> None:
        failures = table.get(key)
        if failures is None:
            failures = table[key] = deque(maxlen=self._keep)
        else:
            table.move_to_end(key)
            self._expire(failures, failure[0])
        failures.append(failure)
        while len(table) > self.max_tracked:
            table.popitem(last=False)

    def _forget(self, table: OrderedDict[str, deque[_Failure]], key: str, other: str) -> None:
        failures = table.get(key)
        if failures is None:
            return
        kept = [f for f in failures if f[1] != other]
        if kept:
            table[key] = deque(kept, maxlen=self._keep)
        else:
            del table[key]

    def _expire(self, failures: deque[_Failure], now: float) -> None:
        while failures and failures[0][0] <= now - self.window_seconds:
            failures.popleft()


def _user_key(raw: str) -> str:
    try:
        return normalise_username(raw)
    except BadUserName:
        # Still counted (a flood of junk names is guessing too), in bounded size.
        return "?" + raw.strip().casefold()[:_KEY_CHARS]


def _address_key(raw: str) -> str:
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return raw.strip()[:_KEY_CHARS]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
