"""Cookies stuffed into a request cost the edge a bounded amount of work, in both lanes.

At most MAX_SESSION_VALUES session values of a request are verified; more
Cookie lines or bytes than a browser sends are refused with a 431 before any
of them is verified. Plain requests go through the fast lane; a request it
does not serve is handed to the aiohttp lane, which answers it in full.
"""

from __future__ import annotations

import pytest

from edge.headers import MAX_COOKIE_BYTES, MAX_COOKIE_HEADERS, MAX_SESSION_VALUES
from edge.session import SessionCodec
from routes import RouteSource, RouteTable

COOKIE = "podgate-session"
STRANGER = SessionCodec(["a-key-the-edge-does-not-hold"], max_age_seconds=3600)


def alice_table(url: str) -> RouteTable:
    table = RouteTable()
    table.add("/user/alice", url, source=RouteSource.PODS, user="alice")
    return table


def forged(count: int) -> list[str]:
    """Well-shaped session values signed with a foreign key: each would need a signature check."""
    return [f"{COOKIE}={STRANGER.issue(f'user{n}')}" for n in range(count)]


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0


def get(path: str, *cookie_lines: str, http10: bool = False) -> bytes:
    version = b"HTTP/1.0" if http10 else b"HTTP/1.1"  # HTTP/1.0: served by the aiohttp lane
    lines = [b"GET " + path.encode() + b" " + version, b"Host: podgate.test"]
    lines += [b"Cookie: " + line.encode() for line in cookie_lines]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


@pytest.mark.parametrize("http10", [False, True], ids=["fast lane", "aiohttp lane"])
async def test_only_the_first_session_values_are_verified(
    make_edge, echo_upstream, raw_http, session_codec, http10: bool
) -> None:
    edge = await make_edge(table=alice_table(echo_upstream.url))
    good = f"{COOKIE}={session_codec.issue('alice')}"
    # A few stale values before the good one: a browser with cookies of two paths.
    few = forged(MAX_SESSION_VALUES - 1)
    answer = await raw_http(edge.port, get("/user/alice/a", "; ".join([*few, good]), http10=http10))
    assert status_of(answer) == 200, answer[:200]

    before = session_codec.signature_checks
    many = forged(60)  # ~4 KiB: fits the fast lane's head limit
    answer = await raw_http(
        edge.port, get("/user/alice/b", "; ".join([*many, good]), http10=http10)
    )
    assert status_of(answer) == 302, answer[:200]  # not signed in: to the login page
    assert session_codec.signature_checks - before <= MAX_SESSION_VALUES
    assert [r["path"] for r in echo_upstream.log.requests] == ["/user/alice/a"]


@pytest.mark.parametrize(
    "cookie_lines",
    [
        pytest.param([f"theme=dark{n}" for n in range(MAX_COOKIE_HEADERS + 1)], id="many lines"),
        pytest.param(["; ".join(forged(20))] * (MAX_COOKIE_HEADERS + 1), id="many session lines"),
        pytest.param(["x=" + "a" * 8000] * (MAX_COOKIE_BYTES // 8000 + 1), id="many bytes"),
    ],
)
@pytest.mark.parametrize("path", ["/user/alice/x", "/hub/login", "/elsewhere"])
async def test_more_cookies_than_a_browser_sends_is_431_before_any_check(
    make_edge, echo_upstream, raw_http, session_codec, cookie_lines: list[str], path: str
) -> None:
    edge = await make_edge(table=alice_table(echo_upstream.url))
    good = f"{COOKIE}={session_codec.issue('alice')}"
    before = session_codec.signature_checks
    answer = await raw_http(edge.port, get(path, *cookie_lines, good))
    assert status_of(answer) == 431, answer[:200]
    assert b"more cookies than a browser sends" in answer
    assert session_codec.signature_checks == before
    assert echo_upstream.log.requests == []
    assert edge.stats.requests[("GET", 431, "none")] == 1
