"""Logging in: the dummy and password authenticators, password hashes, allowed and admin users."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import bcrypt
import pytest

from control.auth import (
    SCHEMES,
    DummyAuthenticator,
    PasswordAuthenticator,
    UserAccess,
    build_access,
    build_authenticator,
    hash_password,
    hash_scheme,
    verify_password,
)
from control.auth.interface import Authenticator
from control.errors import BadUserName
from control.settings import AuthSettings


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    """One hash of "correct horse" per scheme (hashing is slow on purpose: made once)."""
    return {scheme: hash_password("correct horse", scheme) for scheme in SCHEMES}


@pytest.fixture(scope="module")
def password_auth(hashes: dict[str, str]) -> PasswordAuthenticator:
    return PasswordAuthenticator(
        {"ada": hashes["scrypt"], "Bob": hashes["bcrypt"], "cleo@example.org": hashes["argon2"]}
    )


# -- dummy ---------------------------------------------------------------------------------


async def test_dummy_lets_in_any_name_with_the_shared_password() -> None:
    auth = DummyAuthenticator("open sesame")
    assert await auth.authenticate("Ada", "open sesame") == "ada"
    assert await auth.authenticate("  someone.else@example.org ", "open sesame") == (
        "someone.else@example.org"
    )
    assert await auth.authenticate("ada", "open sesam") is None
    assert await auth.authenticate("ada", "") is None
    assert isinstance(auth, Authenticator)


async def test_dummy_says_plainly_it_is_not_for_production() -> None:
    auth = build_authenticator(AuthSettings(kind="dummy", password="pw"))
    assert auth.login_hint is not None
    assert "dummy authenticator: not for production" in auth.login_hint


async def test_dummy_without_a_password_gets_a_random_one_to_print() -> None:
    first = build_authenticator(AuthSettings(kind="dummy"))
    second = build_authenticator(AuthSettings(kind="dummy"))
    assert isinstance(first, DummyAuthenticator) and isinstance(second, DummyAuthenticator)
    assert len(first.shared_password) >= 12
    assert first.shared_password != second.shared_password
    assert await first.authenticate("ada", first.shared_password) == "ada"
    assert await first.authenticate("ada", second.shared_password) is None


async def test_a_bad_user_name_is_refused_with_a_message_for_the_person() -> None:
    auth = DummyAuthenticator("pw")
    with pytest.raises(BadUserName, match="Enter a user name"):
        await auth.authenticate("   ", "pw")
    with pytest.raises(BadUserName, match="letters, digits"):
        await auth.authenticate("ada/../bob", "pw")


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("ada lovelace", "not a space."),
        ("ada\tl", "not a tab."),
        ("a b/c", "not a space, '/'."),
        ("ada\u200bl", "not zero width space (U+200B)."),
    ],
)
async def test_a_bad_character_is_named_as_a_person_says_it(typed: str, said: str) -> None:
    with pytest.raises(BadUserName) as refused:
        await DummyAuthenticator("pw").authenticate(typed, "pw")
    assert str(refused.value).endswith(said)
    assert "U+0020" not in str(refused.value)


# -- password hashes -----------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scheme_verifies_its_own_hash(hashes: dict[str, str], scheme: str) -> None:
    hashed = hashes[scheme]
    assert hash_scheme(hashed) == scheme
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "correct horse ")
    assert not verify_password(hashed, "Correct horse")


def test_hashes_are_salted() -> None:
    assert hash_password("same", "scrypt") != hash_password("same", "scrypt")


def test_bcrypt_hashes_from_other_tools_verify() -> None:
    # htpasswd and PHP write $2y$, old tools $2a$: the same algorithm.
    made = bcrypt.hashpw(b"from elsewhere", bcrypt.gensalt(rounds=4)).decode()
    for prefix in ("$2a$", "$2b$", "$2y$"):
        assert verify_password(prefix + made[4:], "from elsewhere")
        assert not verify_password(prefix + made[4:], "from elsewhere!")


def test_bcrypt_refuses_to_hash_what_it_would_silently_cut() -> None:
    with pytest.raises(ValueError, match="72 bytes"):
        hash_password("x" * 73, "bcrypt")
    assert verify_password(hash_password("x" * 73, "scrypt"), "x" * 73)


@pytest.mark.parametrize(
    ("hashed", "says"),
    [
        ("hunter2", "not a password hash podgate knows"),
        ("$scrypt$ln=15,r=8,p=1$c2FsdA$", "not a well-formed scrypt hash"),
        ("$scrypt$ln=15,r=8,p=1$!!!!$AAAAAAAAAAAAAAAAAAAAAA", "not a well-formed scrypt hash"),
        ("$scrypt$ln=25,r=8,p=1$c2FsdHNhbHRzYWx0$" + "A" * 43, "MiB"),
        ("$2b$12$tooshort", "not a well-formed bcrypt hash"),
        ("$2b$20$" + "a" * 53, "cost"),
        ("$argon2id$v=19$m=65536,t=3$broken", "not a well-formed argon2 hash"),
    ],
)
def test_a_malformed_hash_says_what_is_wrong(hashed: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        hash_scheme(hashed)
    with pytest.raises(ValueError, match=says):
        verify_password(hashed, "anything")


# -- password authenticator ----------------------------------------------------------------


async def test_password_users_log_in_with_their_own_password_whatever_the_scheme(
    password_auth: PasswordAuthenticator,
) -> None:
    assert await password_auth.authenticate("ada", "correct horse") == "ada"
    assert await password_auth.authenticate("BOB", "correct horse") == "bob"
    assert await password_auth.authenticate("Cleo@Example.org", "correct horse") == (
        "cleo@example.org"
    )
    assert password_auth.login_hint is None


async def test_wrong_password_and_unknown_user_look_the_same(
    password_auth: PasswordAuthenticator,
) -> None:
    assert await password_auth.authenticate("ada", "battery staple") is None
    assert await password_auth.authenticate("mallory", "correct horse") is None
    assert await password_auth.authenticate("ada", "") is None
    assert await password_auth.authenticate("ada", "x" * 5000) is None
    assert await password_auth.authenticate("cleo@example.org", "\udcff odd input") is None


async def test_an_unknown_user_costs_a_hash_check_too(password_auth: PasswordAuthenticator) -> None:
    async def timed(name: str) -> float:
        start = time.perf_counter()
        await password_auth.authenticate(name, "battery staple")
        return time.perf_counter() - start

    known = min([await timed("ada") for _ in range(3)])
    unknown = min([await timed("mallory") for _ in range(3)])
    # A dictionary miss alone would be thousands of times faster.
    assert unknown > known * 0.3, (known, unknown)


async def test_checking_a_password_never_blocks_the_event_loop(
    password_auth: PasswordAuthenticator,
) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        for _ in range(1000):
            await asyncio.sleep(0.002)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        start = time.perf_counter()
        assert await password_auth.authenticate("bob", "correct horse") == "bob"  # bcrypt
        elapsed = time.perf_counter() - start
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
    assert elapsed > 0.02
    assert ticks >= 3, (ticks, elapsed)


def test_a_bad_hash_in_the_config_stops_the_build_naming_the_user(
    hashes: dict[str, str],
) -> None:
    settings = AuthSettings(kind="password", users={"ada": hashes["scrypt"], "Bob": "hunter2"})
    with pytest.raises(ValueError, match=r"user 'Bob': the password hash is not a password hash"):
        build_authenticator(settings)


def test_a_bad_user_name_in_the_config_stops_the_build(hashes: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"user 'ada smith' is not a valid user name"):
        build_authenticator(AuthSettings(kind="password", users={"ada smith": hashes["scrypt"]}))


def test_one_user_twice_by_case_stops_the_build(hashes: dict[str, str]) -> None:
    users = {"ada": hashes["scrypt"], "Ada": hashes["bcrypt"]}
    with pytest.raises(ValueError, match="listed twice"):
        build_authenticator(AuthSettings(kind="password", users=users))


# -- users_file (a mounted Secret) ---------------------------------------------------------


async def test_users_file_as_yaml_mapping(tmp_path: Path, hashes: dict[str, str]) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(f"# from the Secret\nada: '{hashes['argon2']}'\nbob: '{hashes['bcrypt']}'\n")
    auth = build_authenticator(AuthSettings(kind="password", users_file=str(path)))
    assert await auth.authenticate("Ada", "correct horse") == "ada"
    assert await auth.authenticate("bob", "correct horse") == "bob"
    assert await auth.authenticate("bob", "wrong") is None


async def test_users_file_as_name_hash_lines_beside_config_users(
    tmp_path: Path, hashes: dict[str, str]
) -> None:
    path = tmp_path / "users"
    path.write_text(f"\n# one per line\nbob:{hashes['bcrypt']}\ncleo:{hashes['scrypt']}\n")
    settings = AuthSettings(kind="password", users={"ada": hashes["argon2"]}, users_file=str(path))
    auth = build_authenticator(settings)
    assert isinstance(auth, PasswordAuthenticator)
    assert auth.usernames == {"ada", "bob", "cleo"}
    assert await auth.authenticate("cleo", "correct horse") == "cleo"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ada\n", "line 1 is not `name: hash`"),
        ("ada: 12345\n", "needs a password hash string"),
        ("# nothing\n", "no users in it"),
        ("ada: not-a-hash\n", "user 'ada': the password hash"),
    ],
)
def test_a_bad_users_file_stops_the_build(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "users"
    path.write_text(text)
    with pytest.raises(ValueError, match=says):
        build_authenticator(AuthSettings(kind="password", users_file=str(path)))


def test_a_missing_users_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ValueError, match=f"users_file: cannot read {missing}"):
        build_authenticator(AuthSettings(kind="password", users_file=str(missing)))


# -- allowed and admin users ---------------------------------------------------------------


def test_no_allowed_list_lets_everyone_in() -> None:
    access = UserAccess()
    assert access.is_allowed("anyone")
    assert not access.is_admin("anyone")


def test_allowed_and_admin_names_are_normalised() -> None:
    access = build_access(AuthSettings(allowed_users=("Ada", "bob"), admins=("ROOT",)))
    assert access.is_allowed("ada") and access.is_allowed("ADA")
    assert access.is_allowed("Bob")
    assert not access.is_allowed("mallory")
    assert access.is_allowed("root")  # admins are always allowed
    assert access.is_admin("Root") and not access.is_admin("ada")
    assert not access.is_allowed("not a name")


def test_a_bad_name_in_the_allowed_list_stops_the_build() -> None:
    with pytest.raises(ValueError, match=r"admins: 'x/y' is not a valid user name"):
        build_access(AuthSettings(admins=("x/y",)))
