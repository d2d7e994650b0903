"""Signed session cookies: who they name, when they stop working, what they refuse."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.session import MAX_COOKIE_LENGTH, InvalidSession, Session, SessionCodec

SECRET = "first-secret-0123456789"


def codec(*secrets: str, max_age: float = 3600, cache_size: int = 100) -> SessionCodec:
    return SessionCodec(secrets or (SECRET,), max_age_seconds=max_age, cache_size=cache_size)


def reason_of(c: SessionCodec, value: object) -> str:
    with pytest.raises(InvalidSession) as caught:
        c.verify(value)  # type: ignore[arg-type]
    return caught.value.reason


def test_issued_cookie_names_its_user_until_it_expires() -> None:
    c = codec(max_age=60)
    before = time.time()
    session = c.verify(c.issue("alice"))
    assert session.user == "alice"
    assert before + 59 <= session.expires <= time.time() + 61


@pytest.mark.parametrize("user", ["bob", "a.b-c_d@example.org", "Zoë 名前", "x" * 300])
def test_any_user_name_round_trips_in_a_cookie_safe_value(user: str) -> None:
    c = codec()
    value = c.issue(user)
    assert value.isascii() and not set(value) & set(' ;,"\\=')
    verified = c.verify(value)
    assert verified == Session(user=user, expires=verified.expires, issued=verified.issued)
    assert verified.user == user


def test_a_session_carries_its_whole_second_issue_time() -> None:
    # What a sign-out everywhere compares with: whole seconds, never after now.
    c = codec()
    before = time.time()
    session = c.verify(c.issue("alice"))
    assert int(before) <= session.issued <= time.time() and session.issued == int(session.issued)
    assert session.expires == session.issued + c.max_age_seconds
    assert c.verify(c.issue("alice")).issued >= session.issued


def test_cached_value_is_refused_once_expired() -> None:
    c = codec(max_age=1)
    value = c.issue("alice")
    assert c.verify(value).user == "alice"  # now cached
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            c.verify(value)
        except InvalidSession as e:
            assert e.reason == "expired"
            break
        time.sleep(0.1)
    else:
        pytest.fail("a one-second session was still accepted after five seconds")
    assert reason_of(c, value) == "expired"  # and stays refused after eviction


def test_expired_uncached_value_is_refused_as_expired() -> None:
    old = codec(max_age=1, cache_size=0)
    value = old.issue("alice")
    time.sleep(2.1)  # itsdangerous timestamps have whole-second resolution
    assert reason_of(old, value) == "expired"


def test_first_secret_signs_and_rotated_keys_still_verify() -> None:
    new, old = "new-secret-abcdefgh", "old-secret-abcdefgh"
    rotated = codec(new, old)
    only_new = codec(new)
    only_old = codec(old)
    issued = rotated.issue("alice")
    assert only_new.verify(issued).user == "alice"  # signed by the first secret
    assert reason_of(only_old, issued) == "bad_signature"
    assert rotated.verify(only_old.issue("bob")).user == "bob"  # old cookies survive rotation


def test_rotated_out_and_foreign_keys_are_refused() -> None:
    current = codec("current-secret-xyz")
    rotated_out = codec("retired-secret-xyz").issue("alice")
    foreign = codec("someone-elses-key").issue("admin")
    assert reason_of(current, rotated_out) == "bad_signature"
    assert reason_of(current, foreign) == "bad_signature"


def test_tampered_user_or_timestamp_is_refused() -> None:
    c = codec()
    user_field, ts, sig = c.issue("alice").split(".")
    mallory = base64.urlsafe_b64encode(b"mallory").rstrip(b"=").decode()
    assert reason_of(c, f"{mallory}.{ts}.{sig}") == "bad_signature"
    assert reason_of(c, f"{user_field}.{ts}A.{sig}") == "bad_signature"
    # A letter in the middle: any change there is another signature (the last
    # letter's low bits are not data, and a change there can be malformed instead).
    flipped = sig[:5] + ("A" if sig[5] != "A" else "B") + sig[6:]
    assert reason_of(c, f"{user_field}.{ts}.{flipped}") == "bad_signature"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "alice",
        "a.b",
        "a..b",
        "...",
        "alice.MTIz.sig extra",
        "ünïcødé.x.y",
        "a.b.c\x00",
        "a" * (MAX_COOKIE_LENGTH + 1),
        "a.b." + "c" * MAX_COOKIE_LENGTH,
        None,
        b"bytes.not.text",
        12345,
    ],
)
def test_garbage_is_malformed_and_never_another_error(garbage: object) -> None:
    assert reason_of(codec(), garbage) == "malformed"


def test_cache_stays_bounded() -> None:
    c = codec(cache_size=3)
    values = [c.issue(f"user{i}") for i in range(10)]
    for value in values:
        c.verify(value)
    assert len(c._cache) == 3
    assert [c.verify(v).user for v in values] == [f"user{i}" for i in range(10)]


def test_bad_configuration_is_refused_at_construction() -> None:
    with pytest.raises(ValueError):
        SessionCodec([], max_age_seconds=60)
    with pytest.raises(ValueError):
        SessionCodec(["ok", ""], max_age_seconds=60)
    with pytest.raises(ValueError):
        SessionCodec(["ok"], max_age_seconds=0)
    with pytest.raises(ValueError):
        codec().issue("")


_CODEC = codec("property-secret")
_VALID = _CODEC.issue("alice")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=200),
        st.text(alphabet="ABCxyz019_-.", max_size=120),
        st.builds(
            lambda i, ch: _VALID[:i] + ch + _VALID[i + 1 :],
            st.integers(0, 80),
            st.text(min_size=1, max_size=1),
        ),
    )
)
def test_arbitrary_text_never_authenticates_and_raises_only_invalid_session(text: str) -> None:
    if text == _VALID:
        return
    try:
        session = _CODEC.verify(text)
    except InvalidSession as e:
        assert e.reason in ("malformed", "bad_signature", "expired")
    else:
        pytest.fail(f"{text!r} authenticated as {session.user!r}")


_CURRENT = SessionCodec(["current-key", "previous-key"], max_age_seconds=3600)
_RETIRED = SessionCodec(["retired-key"], max_age_seconds=3600)
_FOREIGN = SessionCodec(["another-deployments-key"], max_age_seconds=3600)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=64))
def test_no_user_name_signed_with_a_retired_or_foreign_key_authenticates(user: str) -> None:
    assert _CURRENT.verify(_CURRENT.issue(user)).user == user
    for other in (_RETIRED, _FOREIGN):
        with pytest.raises(InvalidSession) as caught:
            _CURRENT.verify(other.issue(user))
        assert caught.value.reason == "bad_signature"


def test_a_cookie_spelt_another_way_in_base64_does_not_authenticate() -> None:
    """base64 decoders ignore the last character's unused bits; only the issued text counts.

    Found by the property above: the signature's last letter swapped for one that
    decodes to the same bytes verified as the original cookie.
    """
    codec = SessionCodec(["rotation-secret-one"], max_age_seconds=3600)
    issued = codec.issue("alice")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    tried = 0
    for field_index, field in enumerate(issued.split(".")):
        for letter in alphabet:
            if letter == field[-1]:
                continue
            fields = issued.split(".")
            fields[field_index] = field[:-1] + letter
            with pytest.raises(InvalidSession):
                codec.verify(".".join(fields))
            tried += 1
    assert tried == 3 * 63
    assert codec.verify(issued).user == "alice"


def test_a_refused_value_costs_one_signature_check_however_often_it_comes() -> None:
    c = codec()
    foreign = codec("some-other-secret-0000").issue("alice")
    assert [reason_of(c, foreign) for _ in range(50)] == ["bad_signature"] * 50
    assert c.signature_checks == 1
    assert [reason_of(c, "not a cookie") for _ in range(5)] == ["malformed"] * 5
    assert c.signature_checks == 1  # refused by shape alone: no cryptography at all


def test_refused_values_never_push_a_good_session_out_of_its_cache() -> None:
    c = SessionCodec([SECRET], max_age_seconds=3600, cache_size=4, refused_cache_size=4)
    good = c.issue("alice")
    assert c.verify(good).user == "alice"
    stranger = codec("some-other-secret-0000")
    for n in range(20):
        reason_of(c, stranger.issue(f"user{n}"))
    checks = c.signature_checks
    assert c.verify(good).user == "alice"
    assert c.signature_checks == checks  # still cached


def test_expired_value_stays_refused_without_another_check() -> None:
    c = codec(max_age=1)
    value = c.issue("alice")
    time.sleep(2.1)  # itsdangerous timestamps have whole-second resolution
    assert reason_of(c, value) == "expired"
    checks = c.signature_checks
    assert reason_of(c, value) == "expired"
    assert c.signature_checks == checks
