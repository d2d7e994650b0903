"""The user directory: configured users, users with a server, users seen signing in."""

from __future__ import annotations

import pytest

from control.errors import BadUserName
from control.users import MAX_REMEMBERED, UserDirectory


def test_every_source_counts_once_and_names_come_sorted() -> None:
    servers = ["carol", "ada"]
    users = UserDirectory(["Ada", "bob"], server_users=lambda: servers)
    users.remember("dan")
    assert users.names() == ["ada", "bob", "carol", "dan"]
    assert len(users) == 4
    assert "carol" in users and "eve" not in users and 42 not in users


def test_a_server_that_goes_takes_its_user_only_if_nothing_else_knows_them() -> None:
    servers = ["carol", "ada"]
    users = UserDirectory(["ada"], server_users=lambda: list(servers))
    assert users.names() == ["ada", "carol"]
    servers.clear()
    assert users.names() == ["ada"]  # configured users stay


def test_users_with_a_record_are_listed_and_a_new_record_set_is_seen() -> None:
    # Records come from the watch every replica runs: a user who signed in elsewhere.
    recorded = [frozenset({"erin"})]
    users = UserDirectory(["ada"], recorded_users=lambda: recorded[0])
    assert users.names() == ["ada", "erin"] and "erin" in users
    recorded[0] = frozenset({"erin", "bea"})
    assert users.names() == ["ada", "bea", "erin"] and "bea" in users
    recorded[0] = frozenset()
    assert users.names() == ["ada"] and "erin" not in users


def test_forget_drops_remembered_users_only() -> None:
    users = UserDirectory(["ada"])
    users.remember("dan")
    assert users.forget("dan") is True
    assert users.forget("ada") is False
    assert users.forget("nobody") is False
    assert users.names() == ["ada"]


def test_remembered_users_are_bounded_oldest_first() -> None:
    users = UserDirectory()
    for i in range(MAX_REMEMBERED + 3):
        users.remember(f"u{i}")
    assert len(users) == MAX_REMEMBERED
    assert "u0" not in users and "u2" not in users and "u3" in users


def test_a_bad_configured_name_is_refused_at_build() -> None:
    with pytest.raises(BadUserName):
        UserDirectory(["not/a/name"])
