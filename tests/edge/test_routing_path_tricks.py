"""Path tricks never reach another user's pod: normalise once, then match.

Alice holds a valid session. Bob's pod must never see a request from her,
whatever dot segments, encoded slashes, double encoding, case or trailing
slashes she tries. Requests go over raw sockets so no client library
normalises them first.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routes import RouteSource, RouteTable

COOKIE = "podgate-session"

TRICKS = [
    "/user/alice/../bob/",
    "/user/alice/../bob",
    "/user/alice/%2e%2e/bob/",
    "/user/alice/%2E%2E/bob/api",
    "/user/alice/..%2Fbob/",
    "/user/alice%2F..%2Fbob/",
    "/user/alice/%252e%252e/bob/",
    "/user/alice/%25252e%25252e/bob/",
    "/user/%62ob/",
    "/user/BOB/",
    "/user/Bob/tree",
    "/user/bob",
    "/user/bob/",
    "//user/bob/",
    "/user//bob/",
    "/./user/bob/",
    "/user/alice/./../bob/",
    "/user/alice/..\\bob/",
    "/user/alice/%5C..%5Cbob/",
    "/user/bob%2F",
    "/user/bob%00/",
    "/user/alice/../../user/bob/",
    "/user/alice/..;/bob/",
]


def request_bytes(path: str, cookie_value: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {COOKIE}={cookie_value}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.") else 0


@pytest.fixture
async def two_users(make_edge, echo_upstream, second_upstream, session_codec):
    table = RouteTable()
    table.add("/user/alice", echo_upstream.url, source=RouteSource.PODS, user="alice")
    table.add("/user/bob", second_upstream.url, source=RouteSource.PODS, user="bob")
    edge = await make_edge(table=table)
    return edge, session_codec.issue("alice")


@pytest.mark.parametrize("path", TRICKS)
async def test_trick_never_reaches_bob(path, two_users, second_upstream, raw_http) -> None:
    edge, alice = two_users
    raw = await raw_http(edge.port, request_bytes(path, alice))
    assert status_of(raw) in (0, 200, 302, 400, 403, 404), raw[:200]
    assert second_upstream.log.requests == [], path


async def test_bob_with_his_own_cookie_is_served(
    two_users, second_upstream, session_codec, raw_http
) -> None:
    edge, _ = two_users
    raw = await raw_http(
        edge.port, request_bytes("/user/alice/../bob/x", session_codec.issue("bob"))
    )
    assert status_of(raw) == 200
    assert len(second_upstream.log.requests) == 1


SEGMENTS = st.sampled_from(
    [
        "user",
        "alice",
        "bob",
        "Bob",
        "..",
        ".",
        "",
        "%2e%2e",
        "%2E",
        "%2F",
        "%252e%252e",
        "x",
        "%62ob",
        "%5C",
        "\\",
        "%00",
        "%2fbob",
        "alice%2F..",
        ";",
    ]
)


def blocking_get(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_generated_paths_never_reach_another_users_pod(
    two_users, second_upstream, session_codec
) -> None:
    edge, alice = two_users
    forged = alice[:-3] + "abc"
    foreign = "QUxJQ0U.AAAA.AAAA"

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        segments=st.lists(SEGMENTS, min_size=1, max_size=6),
        trailing=st.booleans(),
        cookie_value=st.sampled_from([alice, forged, foreign, ""]),
    )
    def property_check(segments: list[str], trailing: bool, cookie_value: str) -> None:
        path = "/" + "/".join(segments) + ("/" if trailing else "")
        raw = blocking_get(edge.port, request_bytes(path, cookie_value))
        assert status_of(raw) != 500, path
        assert second_upstream.log.requests == [], path

    # The edge runs on this loop; the blocking property test runs beside it.
    await asyncio.to_thread(property_check)
