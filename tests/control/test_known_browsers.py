"""The known-browser cookie: signed, bounded, and never an error whatever it holds."""

from __future__ import annotations

import pytest

from control.auth.known_browsers import MAX_USERS, KnownBrowsers


def test_issued_names_read_back_newest_first_without_repeats() -> None:
    known = KnownBrowsers(["secret"])
    value = known.issue("carol", ["ada", "carol", "bob"])
    assert known.users([value]) == ["carol", "ada", "bob"]


def test_at_most_a_few_names_are_kept() -> None:
    known = KnownBrowsers(["secret"])
    value = known.issue("new", [f"user{i}" for i in range(20)])
    assert known.users([value])[:2] == ["new", "user0"]
    assert len(known.users([value])) == MAX_USERS


@pytest.mark.parametrize("value", ["", "x", "a.b.c", "W10.Zx.invalid", "\x00" * 10, "é" * 3000])
def test_garbage_vouches_for_nobody(value: str) -> None:
    assert KnownBrowsers(["secret"]).users([value]) == []


def test_a_value_signed_with_another_secret_or_tampered_vouches_for_nobody() -> None:
    ours, theirs = KnownBrowsers(["secret"]), KnownBrowsers(["other"])
    assert ours.users([theirs.issue("carol")]) == []
    value = ours.issue("carol")
    _payload, rest = value.split(".", 1)
    forged = ours.issue("mallory").split(".", 1)[0] + "." + rest
    assert ours.users([forged]) == []
    assert ours.users([forged, value]) == ["carol"]  # the first value that verifies counts


def test_rotated_secrets_still_verify_and_the_first_signs() -> None:
    old = KnownBrowsers(["old"])
    rotated = KnownBrowsers(["new", "old"])
    assert rotated.users([old.issue("carol")]) == ["carol"]
    assert old.users([rotated.issue("carol")]) == []


def test_an_expired_value_vouches_for_nobody() -> None:
    known = KnownBrowsers(["secret"], max_age_seconds=-1)
    assert known.users([known.issue("carol")]) == []
