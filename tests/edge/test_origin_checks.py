"""Changes and WebSocket handshakes to a user's server only from podgate's own origin.

The edge adds the pod's token upstream, so the pod's own XSRF and Origin
checks never run: a page of another origin on the same site must not be able
to POST to /user/bob/api/terminals or open a terminal WebSocket with bob's
cookie. Both lanes are driven over raw sockets: the fast lane serves ordinary
heads; a head with more header lines than the fast lane takes goes to the
aiohttp lane, which answers it in full.
"""

from __future__ import annotations

import pytest

from edge.fastlane.head import MAX_FIELDS
from edge.origin import normalise_origin, parse_origins
from edge.settings import EdgeSettings, parse_networks
from routes import RouteSource, RouteTable

HOST = "podgate.test:8000"
OWN = "http://podgate.test:8000"
KEY_LINES = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
SWITCH = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)
LANES = ["fast lane", "aiohttp lane"]


def pod_answer(head: bytes) -> list[object]:
    if b"upgrade: websocket" in head.lower():
        return [(0.0, SWITCH), (0.0, "close")]  # switched, then the pod hangs up
    return [(0.0, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]


def request(
    method: str, path: str, lane: str, *headers: str, websocket: bool = False, host: str = HOST
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *headers]
    if websocket:
        lines += ["Upgrade: websocket", "Connection: Upgrade", KEY_LINES]
    else:
        lines.append("Connection: close")
    if method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 2")
    if lane == "aiohttp lane":
        lines += [f"X-Pad-{n}: 1" for n in range(MAX_FIELDS + 1)]
    body = b"{}" if method in ("POST", "PUT", "PATCH") else b""
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0


@pytest.fixture
async def bob_edge(make_edge, scripted_pod, session_codec):
    """An edge with bob's server (a scripted pod) at /user/bob and an API route at /api-route."""
    scripted_pod.answers["*"] = pod_answer
    table = RouteTable()
    table.add("/user/bob", scripted_pod.url, source=RouteSource.PODS, user="bob")
    table.add("/api-route", scripted_pod.url, source=RouteSource.API)

    async def start(**settings: object):
        return await make_edge(table=table, settings=EdgeSettings(**settings))  # type: ignore[arg-type]

    cookie = f"Cookie: podgate-session={session_codec.issue('bob')}"
    return start, scripted_pod, cookie


REFUSED = {
    "foreign origin": ["Origin: http://evil.example"],
    "sibling subdomain": ["Origin: http://evil.podgate.test:8000", "Sec-Fetch-Site: same-site"],
    "another port": ["Origin: http://podgate.test:8888", "Sec-Fetch-Site: same-site"],
    "another scheme": ["Origin: https://podgate.test:8000"],
    "null origin": ["Origin: null"],
    "cross-site without origin": ["Sec-Fetch-Site: cross-site"],
    "basic credentials are not a script's token": [
        "Origin: http://evil.example",
        "Authorization: Basic Ym9iOnB3",
    ],
}


@pytest.mark.parametrize("lane", LANES)
@pytest.mark.parametrize("shape", list(REFUSED))
@pytest.mark.parametrize("method", ["POST", "DELETE", "WEBSOCKET"])
async def test_changes_and_handshakes_from_another_origin_are_refused(
    bob_edge, raw_http, lane: str, shape: str, method: str
) -> None:
    start, pod, cookie = bob_edge
    edge = await start()
    websocket = method == "WEBSOCKET"
    verb = "GET" if websocket else method
    data = request(
        verb, "/user/bob/api/terminals", lane, cookie, *REFUSED[shape], websocket=websocket
    )
    answer = await raw_http(edge.port, data)
    assert status_of(answer) == 403, answer[:300]
    assert b"Cross-origin request refused" in answer
    assert pod.heads == []


ALLOWED = {
    "own origin": [f"Origin: {OWN}"],
    "own origin spelt with capitals": ["Origin: HTTP://Podgate.Test:8000"],
    "no origin, no fetch metadata (curl)": [],
    "browser says same-origin": ["Sec-Fetch-Site: same-origin"],
    "same-origin by the browser, host rewritten": [
        "Origin: http://internal:8000",
        "Sec-Fetch-Site: same-origin",
    ],
    "a navigation typed by the user": ["Sec-Fetch-Site: none"],
    "a script with its own token": ["Origin: http://evil.example", "Authorization: token abc"],
    "a script with a bearer token": ["Origin: http://evil.example", "Authorization: Bearer a"],
}


@pytest.mark.parametrize("lane", LANES)
@pytest.mark.parametrize("shape", list(ALLOWED))
@pytest.mark.parametrize("method", ["POST", "WEBSOCKET"])
async def test_own_origin_and_scripts_keep_working(
    bob_edge, raw_http, lane: str, shape: str, method: str
) -> None:
    start, pod, cookie = bob_edge
    edge = await start()
    websocket = method == "WEBSOCKET"
    verb = "GET" if websocket else method
    data = request(
        verb, "/user/bob/api/terminals", lane, cookie, *ALLOWED[shape], websocket=websocket
    )
    answer = await raw_http(edge.port, data)
    assert status_of(answer) == (101 if websocket else 200), answer[:300]
    assert len(pod.heads) == 1
    if lane == "fast lane":
        assert edge.server.lane.handed_over == 0


@pytest.mark.parametrize("lane", LANES)
async def test_reads_and_routes_without_a_session_are_not_checked(
    bob_edge, raw_http, lane: str
) -> None:
    start, pod, cookie = bob_edge
    edge = await start()
    evil = "Origin: http://evil.example"
    read = await raw_http(edge.port, request("GET", "/user/bob/tree", lane, cookie, evil))
    assert status_of(read) == 200
    # A route an external hub added: the edge vouches for nothing and adds no token.
    api = await raw_http(edge.port, request("POST", "/api-route/x", lane, evil))
    assert status_of(api) == 200
    assert len(pod.heads) == 2


@pytest.mark.parametrize("lane", LANES)
async def test_configured_origins_are_allowed(bob_edge, raw_http, lane: str) -> None:
    start, pod, cookie = bob_edge
    edge = await start(allowed_origins=parse_origins(["https://lab.example.org"]))
    ok = await raw_http(
        edge.port,
        request("POST", "/user/bob/x", lane, cookie, "Origin: https://lab.example.org:443"),
    )
    assert status_of(ok) == 200
    other = await raw_http(
        edge.port, request("POST", "/user/bob/x", lane, cookie, "Origin: https://example.org")
    )
    assert status_of(other) == 403
    assert len(pod.heads) == 1


@pytest.mark.parametrize("lane", LANES)
@pytest.mark.parametrize("trusted", [True, False], ids=["trusted proxy", "untrusted peer"])
async def test_public_origin_comes_from_forwarded_headers_of_trusted_proxies_only(
    bob_edge, raw_http, lane: str, trusted: bool
) -> None:
    start, _, cookie = bob_edge
    networks = parse_networks(["127.0.0.1/32"] if trusted else ["10.0.0.0/8"])
    edge = await start(trusted_proxies=networks)
    data = request(
        "POST",
        "/user/bob/x",
        lane,
        cookie,
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: notebooks.example.org",
        "Origin: https://notebooks.example.org",
    )
    answer = await raw_http(edge.port, data)
    assert status_of(answer) == (200 if trusted else 403), answer[:300]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://Lab.Example.org", "https://lab.example.org"),
        ("https://lab.example.org:443", "https://lab.example.org"),
        ("http://lab.example.org:80/", "http://lab.example.org"),
        ("http://lab.example.org:8080", "http://lab.example.org:8080"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("null", None),
        ("lab.example.org", None),
        ("ftp://lab.example.org", None),
        ("https://lab.example.org/path", None),
        ("https://user@lab.example.org", None),
        ("https://lab.example.org:99999", None),
        ("https://", None),
    ],
)
def test_origins_are_compared_in_one_spelling(value: str, expected: str | None) -> None:
    assert normalise_origin(value) == expected
