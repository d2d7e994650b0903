"""The route table answers like configurable-http-proxy's trie."""

from __future__ import annotations

import pytest

from routes import RouteSource, RouteTable, Target


def table_with(*paths: str) -> RouteTable:
    table = RouteTable()
    for i, path in enumerate(paths):
        table.add(path, f"http://127.0.0.{i + 2}:8888", source=RouteSource.API)
    return table


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/user/alice", "/user/alice"),
        ("/user/alice/", "/user/alice"),
        ("/user/alice/lab/tree/a.ipynb", "/user/alice"),
        ("/user/alicex/", "/user"),  # whole segments only: alice is not a prefix of alicex
        ("/user/", "/user"),
        ("/user", "/user"),
        ("/users/x", "/"),
        ("/", "/"),
        ("/user/bob/api/kernels", "/user/bob/api"),
        ("/user/bob/apix", "/user/bob"),
    ],
)
def test_longest_whole_segment_prefix_wins(path: str, expected: str) -> None:
    table = table_with("/", "/user", "/user/alice/", "/user/bob", "/user/bob/api")
    route = table.longest_match(path)
    assert route is not None
    assert route.path == expected


def test_no_root_route_means_no_match() -> None:
    table = table_with("/user/alice")
    assert table.longest_match("/user/bob/") is None
    assert table.longest_match("/") is None


def test_trailing_slash_and_double_slash_name_the_same_route() -> None:
    table = table_with("/user/alice/")
    assert table.get("/user/alice") is table.get("/user/alice/")
    table.add("//user//alice", "http://127.0.0.9:1", source=RouteSource.API)
    assert len(table) == 1
    route = table.get("/user/alice")
    assert route is not None
    assert route.target.host == "127.0.0.9"


def test_remove_shrinks_the_search_depth() -> None:
    table = table_with("/", "/a/b/c/d")
    assert table.longest_match("/a/b/c/d/e").path == "/a/b/c/d"
    assert table.remove("/a/b/c/d/") is not None
    assert table.remove("/a/b/c/d") is None
    assert table.longest_match("/a/b/c/d/e").path == "/"
    assert len(table) == 1


def test_targets_are_parsed_once_with_base_path() -> None:
    target = Target.parse("http://127.0.0.5:8888/prefix/")
    assert (target.scheme, target.host, target.port, target.base_path) == (
        "http",
        "127.0.0.5",
        8888,
        "/prefix",
    )
    assert Target.parse("https://example.test").port == 443


@pytest.mark.parametrize("bad", ["127.0.0.1:80", "ftp://x/", "http://", "http://h:99999/"])
def test_bad_targets_are_refused_with_a_message(bad: str) -> None:
    with pytest.raises(ValueError, match="target"):
        RouteTable().add("/x", bad, source=RouteSource.API)


def test_host_routing_uses_the_host_as_first_segment() -> None:
    table = RouteTable(host_routing=True)
    table.add("/alice.example.test", "http://127.0.0.2:1", source=RouteSource.API)
    table.add("/", "http://127.0.0.3:1", source=RouteSource.API)
    assert table.match_request("Alice.Example.Test:8000", "/x").path == "/alice.example.test"
    assert table.match_request("bob.example.test", "/x").path == "/"


def test_sessions_are_required_only_for_user_routes_not_added_through_the_api() -> None:
    table = RouteTable()
    api = table.add("/user/a", "http://127.0.0.2:1", source=RouteSource.API, user="a")
    pods = table.add("/user/b", "http://127.0.0.2:1", source=RouteSource.PODS, user="b")
    open_config = table.add("/docs", "http://127.0.0.2:1", source=RouteSource.CONFIG)
    assert not api.requires_session
    assert pods.requires_session
    assert not open_config.requires_session


def test_inactive_since_lists_routes_idle_before_the_cutoff() -> None:
    table = table_with("/a", "/b")
    table.get("/a").last_activity = 100.0
    table.get("/b").last_activity = 300.0
    assert [r.path for r in table.inactive_since(200.0)] == ["/a"]


def test_lookup_with_100000_routes_finds_each_user() -> None:
    table = RouteTable()
    for i in range(100_000):
        table.add(f"/user/u{i}", "http://127.0.0.2:1", source=RouteSource.PODS, user=f"u{i}")
    for i in (0, 4_242, 99_999):
        assert table.longest_match(f"/user/u{i}/lab").user == f"u{i}"
    assert table.longest_match("/user/u100000/lab") is None
