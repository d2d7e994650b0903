"""Failed logins slow down the next tries, per user name and per client address."""

from __future__ import annotations

import pytest

from control.auth import LoginThrottle, build_throttle
from control.settings import AuthSettings


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(clock: Clock) -> LoginThrottle:
    return LoginThrottle(free_failures=3, window_seconds=600, max_delay_seconds=10, clock=clock)


def test_the_first_failures_are_free_then_the_wait_doubles_up_to_the_cap(
    throttle: LoginThrottle,
) -> None:
    waits = []
    for _ in range(8):
        waits.append(throttle.delay("ada", "10.0.0.1"))
        throttle.failed("ada", "10.0.0.1")
    waits.append(throttle.delay("ada", "10.0.0.1"))
    assert waits == [0, 0, 0, 1, 2, 4, 8, 10, 10]


def test_the_wait_counts_from_the_last_failure(throttle: LoginThrottle, clock: Clock) -> None:
    for _ in range(5):
        throttle.failed("ada", "10.0.0.1")
    assert throttle.delay("ada", "10.0.0.1") == 4
    clock.now += 3
    assert throttle.delay("ada", "10.0.0.1") == pytest.approx(1)
    clock.now += 1
    assert throttle.delay("ada", "10.0.0.1") == 0


def test_one_address_guessing_many_names_is_slowed(throttle: LoginThrottle) -> None:
    for name in ("ada", "bob", "cleo", "dan"):
        throttle.failed(name, "10.0.0.9")
    assert throttle.delay("eve", "10.0.0.9") == 2
    assert throttle.delay("eve", "10.0.0.10") == 0  # another address is not


def test_one_name_guessed_from_many_addresses_is_slowed(throttle: LoginThrottle) -> None:
    for i in range(4):
        throttle.failed("ada", f"10.0.1.{i}")
    assert throttle.delay("ada", "10.0.2.1") == 2
    assert throttle.delay("bob", "10.0.2.1") == 0


def test_user_names_are_counted_as_the_user_they_name(throttle: LoginThrottle) -> None:
    for name in ("Ada", "ADA", " ada", "ada"):
        throttle.failed(name, f"192.0.2.{len(name)}")
    assert throttle.delay("aDa", "192.0.2.200") == 2


def test_names_that_are_not_user_names_are_counted_too(throttle: LoginThrottle) -> None:
    for _ in range(4):
        throttle.failed("x/../y", "10.0.0.1")
    assert throttle.delay("x/../y", "10.0.0.2") == 2


def test_ipv6_clients_are_counted_per_64(throttle: LoginThrottle) -> None:
    for i in range(4):
        throttle.failed(f"user{i}", f"2001:db8:0:1::{i + 1}")
    assert throttle.delay("other", "2001:db8:0:1:ffff::1") == 2
    assert throttle.delay("other", "2001:db8:0:2::1") == 0
    for i in range(4):
        throttle.failed(f"v4user{i}", "::ffff:198.51.100.7")
    assert throttle.delay("other", "198.51.100.7") == 2


def test_failures_leave_the_window(throttle: LoginThrottle, clock: Clock) -> None:
    for _ in range(5):
        throttle.failed("ada", "10.0.0.1")
        clock.now += 100
    # At 1500: failures at 1000..1400 are all in the window.
    assert throttle.delay("ada", "10.0.0.1") == 0  # 4 s after the last one passed long ago
    throttle.failed("ada", "10.0.0.1")  # the sixth, at 1500, within the window: waits 8 s
    assert throttle.delay("ada", "10.0.0.1") == 8
    clock.now += 600  # all six have left the window
    assert throttle.delay("ada", "10.0.0.1") == 0
    throttle.failed("ada", "10.0.0.1")
    assert throttle.delay("ada", "10.0.0.1") == 0  # one in the window: free again


def test_a_success_clears_the_users_own_failures_from_that_address_only(
    throttle: LoginThrottle,
) -> None:
    for _ in range(4):
        throttle.failed("ada", "10.0.0.1")  # ada mistyping at home
    for _ in range(4):
        throttle.failed("ada", "203.0.113.5")  # someone guessing her password
    throttle.succeeded("ada", "10.0.0.1")
    assert throttle.delay("ada", "10.0.0.1") == 2  # the guesser's four still count for ada
    assert throttle.delay("bob", "10.0.0.1") == 0  # the home address is clear again
    assert throttle.delay("bob", "203.0.113.5") == 2


def test_a_success_does_not_clear_an_address_that_guessed_other_names(
    throttle: LoginThrottle,
) -> None:
    for name in ("ada", "bob", "cleo", "dan"):
        throttle.failed(name, "203.0.113.5")
    throttle.succeeded("mallory", "203.0.113.5")  # the guesser's own account
    assert throttle.delay("eve", "203.0.113.5") == 2


def test_a_flood_of_names_and_addresses_keeps_memory_bounded(clock: Clock) -> None:
    throttle = LoginThrottle(3, 600, 10, max_tracked=100, clock=clock)
    for i in range(20_000):
        throttle.failed(f"user{i}", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert throttle.tracked <= 200
    for _ in range(4):
        throttle.failed("ada", "192.0.2.1")
    assert throttle.delay("ada", "192.0.2.2") == 2  # the newest are the ones kept
    assert throttle.delay("user0", "192.0.2.3") == 0  # the oldest were evicted


def test_a_name_failing_forever_keeps_few_entries(throttle: LoginThrottle, clock: Clock) -> None:
    for _ in range(10_000):
        throttle.failed("ada", "10.0.0.1")
    assert throttle.delay("ada", "10.0.0.1") == 10
    assert throttle.tracked == 2


def test_built_from_the_auth_settings(clock: Clock) -> None:
    settings = AuthSettings(free_failures=1, failure_window_seconds=60, max_delay_seconds=3)
    throttle = build_throttle(settings, clock=clock)
    throttle.failed("ada", "10.0.0.1")
    assert throttle.delay("ada", "10.0.0.1") == 1
    for _ in range(5):
        throttle.failed("ada", "10.0.0.1")
    assert throttle.delay("ada", "10.0.0.1") == 3
    clock.now += 61
    assert throttle.delay("ada", "10.0.0.1") == 0


def test_a_known_browser_skips_the_count_by_name_but_not_by_address(
    throttle: LoginThrottle,
) -> None:
    for i in range(4):
        throttle.failed("carol", f"192.0.2.{i}")
    assert throttle.delay("carol", "203.0.113.1") == 2
    assert throttle.delay("carol", "203.0.113.1", known_browser=True) == 0
    for _ in range(4):
        throttle.failed("ada", "203.0.113.2")
    assert throttle.delay("carol", "203.0.113.2", known_browser=True) == 2


def test_the_known_name_is_compared_as_the_user_it_names() -> None:
    assert LoginThrottle.same_user("Carol", ["carol", "ada"])
    assert not LoginThrottle.same_user("carol2", ["carol"])
    assert not LoginThrottle.same_user("carol", [])
