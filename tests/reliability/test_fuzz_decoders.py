"""Fuzzing (hypothesis) of the three parsers every request goes through.

- SessionCodec.verify: any input raises InvalidSession or yields a real
  session; a mutated valid cookie never names another user.
- normalise_path: the output is canonical (one leading slash, no empty, "."
  or ".." segment, no backslash) and canonical outputs are fixed points.
- RouteTable: random add/remove/lookup sequences agree with a naive model
  that tries every route.

Bounded for CI (a few seconds each); PODGATE_RELIABILITY_SCALE=N runs N
times as many examples (bench).
"""

from __future__ import annotations

import posixpath

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from reliability_kit import CURRENT_SECRET, PREVIOUS_SECRET, budget

from edge.session import InvalidSession, SessionCodec
from routes import RouteSource, RouteTable, normalise_path

FUZZ = settings(
    max_examples=budget("fuzz", 300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

CODEC = SessionCodec([CURRENT_SECRET, PREVIOUS_SECRET], max_age_seconds=3600, cache_size=0)
COOKIE_ALPHABET = st.sampled_from(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.=%+/ \"';,\\\x00é"
)


@FUZZ
@given(st.one_of(st.text(COOKIE_ALPHABET, max_size=120), st.text(max_size=60)))
def test_verify_random_input_never_authenticates(value: str) -> None:
    try:
        CODEC.verify(value)
    except InvalidSession as e:
        assert e.reason in ("malformed", "bad_signature", "expired")
    else:
        raise AssertionError(f"random cookie {value!r} authenticated")


@FUZZ
@given(
    user=st.sampled_from(["alice", "bob", "a", "Alice", "alice-2"]),
    position=st.integers(min_value=0, max_value=200),
    replacement=st.text(COOKIE_ALPHABET, min_size=0, max_size=3),
    cut=st.booleans(),
)
def test_mutated_cookie_never_names_another_user(
    user: str, position: int, replacement: str, cut: bool
) -> None:
    valid = CODEC.issue(user)
    at = position % (len(valid) + 1)
    mutated = valid[:at] if cut else valid[:at] + replacement + valid[at + 1 :]
    try:
        session = CODEC.verify(mutated)
    except InvalidSession:
        return
    # Only a change the signature does not cover may survive (base64 padding bits):
    # it must still be the same user.
    assert session.user == user, (valid, mutated, session.user)


SEGMENTS = st.sampled_from(
    [
        *("user", "USER", "alice", "bob", ".", "..", "%2e", "%2E%2e", "%2F", "%2f", "%252F"),
        *("%5C", "\\", "", "a%00b", "é", "%C3%A9", "%ff", "x;y", "?q=1", "#f", "~", "%", "%zz"),
    ]
)
RAW_PATHS = st.builds(
    lambda segs, lead, trail: ("/" if lead else "") + "/".join(segs) + ("/" if trail else ""),
    st.lists(SEGMENTS, max_size=8),
    st.booleans(),
    st.booleans(),
)


@FUZZ
@given(st.one_of(RAW_PATHS, st.text(max_size=40)))
def test_normalised_path_is_canonical(raw: str) -> None:
    path = normalise_path(raw)
    assert path.startswith("/")
    assert "\\" not in path
    inner = path[1:-1] if path.endswith("/") and path != "/" else path[1:]
    segments = inner.split("/") if inner else []
    assert all(s not in ("", ".", "..") for s in segments), path
    if "%" not in path and "?" not in path and "#" not in path:
        assert normalise_path(path) == path  # canonical output is a fixed point


@FUZZ
@given(st.lists(st.sampled_from(["a", "b", "user", "..", ".", ""]), max_size=8))
def test_plain_paths_resolve_like_posix(segments: list[str]) -> None:
    raw = "/" + "/".join(segments)
    expected = posixpath.normpath("/" + raw.lstrip("/"))  # normpath keeps a leading "//"
    got = normalise_path(raw)
    assert (got.rstrip("/") or "/") == expected, (raw, got, expected)


@FUZZ
@given(RAW_PATHS)
def test_no_path_escapes_its_user_prefix_by_encoding(raw: str) -> None:
    """Whatever the encoding, the route chosen is the one the canonical path names."""
    table = RouteTable()
    table.add("/user/alice", "http://127.0.0.1:1", source=RouteSource.PODS, user="alice")
    table.add("/user/bob", "http://127.0.0.1:2", source=RouteSource.PODS, user="bob")
    path = normalise_path(raw)
    route = table.longest_match(path)
    segments = path.split("/")
    if route is None:
        assert segments[1:3] not in (["user", "alice"], ["user", "bob"])
    else:
        assert segments[1] == "user" and segments[2] == route.user, (raw, path, route.user)


# ---------------------------------------------------------------- route table model

KEYS = st.lists(st.sampled_from(["a", "b", "c", "user", "x y"]), max_size=4).map(
    lambda segs: "/" + "/".join(segs)
)
LOOKUPS = st.lists(st.sampled_from(["a", "b", "c", "user", "x y", "d"]), max_size=6).map(
    lambda segs: "/" + "/".join(segs)
)


def naive_longest_match(model: dict[str, str], path: str) -> str | None:
    """Try every route: the longest key that is a whole-segment prefix of path."""
    best: str | None = None
    for key in model:
        covers = key == "/" or path == key or path.startswith(key + "/")
        if covers and (best is None or len(key) > len(best)):
            best = key
    return best


class RouteTableAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.table = RouteTable()
        self.model: dict[str, str] = {}
        self.counter = 0

    @rule(key=KEYS, trailing=st.booleans())
    def add(self, key: str, trailing: bool) -> None:
        self.counter += 1
        target = f"http://127.0.0.1:{1000 + self.counter}"
        self.table.add(
            key + ("/" if trailing and key != "/" else ""), target, source=RouteSource.API
        )
        self.model[key] = target

    @rule(key=KEYS)
    def remove(self, key: str) -> None:
        removed = self.table.remove(key)
        expected = self.model.pop(key, None)
        assert (removed.target.url if removed else None) == expected

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove_existing(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        removed = self.table.remove(key)
        assert removed is not None and removed.target.url == self.model.pop(key)

    @rule(path=LOOKUPS)
    def lookup(self, path: str) -> None:
        route = self.table.longest_match(path)
        expected = naive_longest_match(self.model, path)
        assert (route.path if route else None) == expected, (path, sorted(self.model))
        if route is not None:
            assert route.target.url == self.model[expected]

    @invariant()
    def same_size(self) -> None:
        assert len(self.table) == len(self.model)
        assert sorted(r.path for r in self.table) == sorted(self.model)


TestRouteTableAgainstModel = RouteTableAgainstModel.TestCase
TestRouteTableAgainstModel.settings = settings(
    max_examples=budget("routes", 150),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
