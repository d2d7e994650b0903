"""CSRF tokens: a form token only works with the browser's own cookie, unchanged and in time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.csrf import CsrfTokens

SECRET = "a cookie secret of a sensible length, 32+"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(clock: Clock) -> CsrfTokens:
    return CsrfTokens(SECRET, max_age_seconds=3600, clock=clock)


def test_a_token_checks_with_its_own_binding(tokens: CsrfTokens) -> None:
    binding = tokens.new_binding()
    assert tokens.valid_binding(binding)
    assert tokens.check(binding, tokens.token_for(binding))


def test_bindings_are_random() -> None:
    assert len({CsrfTokens.new_binding() for _ in range(50)}) == 50


def test_a_tampered_token_fails(tokens: CsrfTokens) -> None:
    binding = tokens.new_binding()
    token = tokens.token_for(binding)
    issued, mac = token.split(".")
    flipped = mac[:10] + ("A" if mac[10] != "A" else "B") + mac[11:]
    assert not tokens.check(binding, f"{issued}.{flipped}")
    assert not tokens.check(binding, token[:-1])
    assert not tokens.check(binding, token + "A")
    # A later issue time on the same MAC (to stretch its life) is a different message.
    assert not tokens.check(binding, f"{int(issued, 16) + 1:x}.{mac}")


def test_a_token_from_another_browser_fails(tokens: CsrfTokens) -> None:
    mine, theirs = tokens.new_binding(), tokens.new_binding()
    assert not tokens.check(mine, tokens.token_for(theirs))
    assert not tokens.check(theirs, tokens.token_for(mine))


def test_a_token_made_with_another_secret_fails(tokens: CsrfTokens, clock: Clock) -> None:
    binding = tokens.new_binding()
    other = CsrfTokens("a different secret altogether, also long", clock=clock)
    assert not tokens.check(binding, other.token_for(binding))


def test_tokens_made_before_a_key_rotation_still_check(clock: Clock) -> None:
    old = CsrfTokens("the old secret, still accepted for now", clock=clock)
    new = CsrfTokens(
        "the new secret that signs from now on",
        previous=[b"the old secret, still accepted for now"],
        clock=clock,
    )
    binding = old.new_binding()
    assert new.check(binding, old.token_for(binding))
    assert not old.check(binding, new.token_for(binding))


def test_a_token_for_one_session_fails_for_another(tokens: CsrfTokens) -> None:
    binding = tokens.new_binding()
    token = tokens.token_for(binding, context="ada")
    assert tokens.check(binding, token, context="ada")
    assert not tokens.check(binding, token, context="mallory")
    assert not tokens.check(binding, token)


def test_tokens_expire(tokens: CsrfTokens, clock: Clock) -> None:
    binding = tokens.new_binding()
    token = tokens.token_for(binding)
    clock.now += 3599
    assert tokens.check(binding, token)
    clock.now += 2
    assert not tokens.check(binding, token)


def test_a_token_from_far_in_the_future_fails(tokens: CsrfTokens, clock: Clock) -> None:
    binding = tokens.new_binding()
    clock.now += 3600
    token = tokens.token_for(binding)
    clock.now -= 3600
    assert not tokens.check(binding, token)


@pytest.mark.parametrize(
    ("binding", "token"),
    [
        (None, None),
        ("", ""),
        ("short", "0.x"),
        (b"bytes-binding-value-xxxxxxxx", b"0.abc"),
        (12, 34),
        ("valid-looking-binding-value-123", "zz." + "A" * 43),
        ("valid-looking-binding-value-123", "." * 44),
        ("valid-looking-binding-value-123", "ffffffffffffffffffff." + "A" * 43),
        ("valid-looking-binding-value-123", "x" * 100_000),
        ("\x00" * 40, "0." + "A" * 43),
    ],
)
def test_garbage_is_refused_not_raised(tokens: CsrfTokens, binding: object, token: object) -> None:
    assert tokens.check(binding, token) is False


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.none(), st.text(max_size=80), st.binary(max_size=40), st.integers()),
    st.one_of(st.none(), st.text(max_size=80), st.binary(max_size=40), st.integers()),
    st.text(max_size=20),
)
def test_random_input_never_raises_and_never_checks(
    binding: object, token: object, context: str
) -> None:
    tokens = CsrfTokens(SECRET)
    assert tokens.check(binding, token, context) is False


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        CsrfTokens("")
    with pytest.raises(ValueError):
        CsrfTokens("x", previous=[b""])
