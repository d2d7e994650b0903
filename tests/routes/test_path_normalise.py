"""One canonical path per request: path tricks cannot select another route."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routes import RouteSource, RouteTable, normalise_path


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("/user/alice/lab", "/user/alice/lab"),
        ("/user/alice/lab?token=x", "/user/alice/lab"),
        ("/user/alice/../bob/", "/user/bob/"),
        ("/user/alice/%2e%2e/bob/", "/user/bob/"),
        ("/user/alice/..%2fbob/", "/user/bob/"),
        ("/user/alice/..%2Fbob", "/user/bob"),
        ("/user/%252e%252e/x", "/user/%2e%2e/x"),  # decoded once: a literal name, not a dot
        ("//user///alice", "/user/alice"),
        ("/user/./alice/.", "/user/alice/"),
        ("/../../etc", "/etc"),
        ("/user\\alice", "/user/alice"),
        ("", "/"),
        ("/", "/"),
        ("/user/al%69ce/", "/user/alice/"),
    ],
)
def test_canonical_forms(raw: str, canonical: str) -> None:
    assert normalise_path(raw) == canonical


path_text = st.lists(
    st.sampled_from([*"ab/.%2eEfF5c\\?", "%2f", "%2e", "%25", "..", "/user/", "bob"]),
    max_size=30,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(path_text)
def test_canonical_paths_have_no_dot_or_empty_segments(raw: str) -> None:
    path = normalise_path(raw)
    assert path.startswith("/")
    segments = path.strip("/").split("/") if path != "/" else []
    assert "." not in segments
    assert ".." not in segments
    assert "" not in segments


@settings(max_examples=400, deadline=None)
@given(path_text)
def test_a_user_route_only_matches_paths_that_canonically_start_with_it(raw: str) -> None:
    table = RouteTable()
    table.add("/user/alice", "http://127.0.0.2:1", source=RouteSource.PODS, user="alice")
    table.add("/user/bob", "http://127.0.0.3:1", source=RouteSource.PODS, user="bob")
    path = normalise_path("/user/alice/" + raw)
    route = table.longest_match(path)
    if route is not None:
        assert path == route.path or path.startswith(route.path + "/")
