"""The hub reached as an upstream: what it is told, on both lanes, and what a browser cannot forge.

The hub trusts the browser's address and scheme only because the edge wrote
them (edge.hub_upstream): a browser's own X-Podgate-* lines must never get
through, whichever lane serves the request. The hub here is a plain aiohttp
app served over podgate.hub_link, as the wiring serves the control plane's.
"""

from __future__ import annotations

import json

from aiohttp import web

from edge.fastlane.head import header_kinds, parse_request
from edge.fastlane.hub_head import hub_head
from tests.edge.conftest import raw_exchange

COOKIE = b"podgate-session"


def told_app() -> web.Application:
    """A hub that answers with what it was told, and sets a session cookie."""

    async def told(request: web.Request) -> web.Response:
        body = {
            "remote": request.remote,
            "scheme": request.scheme,
            "cookie": request.headers.get("Cookie"),
            "forwarded_for": request.headers.get("X-Forwarded-For"),
            "podgate_headers": sorted(
                h for h in request.headers if h.lower().startswith("x-podgate")
            ),
            "request_id": request.headers.get("X-Request-Id"),
            "body": (await request.read()).decode(),
        }
        response = web.json_response(body)
        response.set_cookie("podgate-session", "issued-by-the-hub")
        return response

    app = web.Application()
    app.router.add_route("*", "/hub/{tail:.*}", told)
    return app


def split_answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers by lower-case name, body) of one whole answer with a Content-Length."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body[: int(headers["content-length"])]


def _head(raw: bytes) -> bytes | None:
    end = raw.find(b"\r\n\r\n")
    head = parse_request(raw, end, COOKIE, False, header_kinds(b"authorization"))
    assert head is not None
    return hub_head(raw, head, "rid-1", b"10.1.2.3", "https")


def test_the_hub_head_keeps_the_browsers_lines_but_hop_by_hop_ones() -> None:
    raw = (
        b"POST /hub/login HTTP/1.1\r\nHost: hub.example\r\nCookie: podgate-session=abc; a=b\r\n"
        b"X-Forwarded-For: 6.6.6.6\r\nConnection: keep-alive, X-Drop-Me\r\nX-Drop-Me: 1\r\n"
        b"Keep-Alive: timeout=5\r\nX-Request-Id: forged\r\nContent-Length: 3\r\n\r\nabc"
    )
    head = _head(raw)
    assert head is not None
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /hub/login HTTP/1.1"
    # The session cookie goes to the hub (it is podgate), X-Forwarded-For as sent
    # (the hub judges it from the peer it is told).
    assert b"Cookie: podgate-session=abc; a=b" in lines
    assert b"X-Forwarded-For: 6.6.6.6" in lines
    for gone in (b"Connection", b"X-Drop-Me", b"Keep-Alive", b"X-Request-Id: forged"):
        assert not any(line.startswith(gone) for line in lines), gone
    assert lines[-6:] == [
        b"X-Request-Id: rid-1",
        b"X-Podgate-Peer: 10.1.2.3",
        b"X-Podgate-Scheme: https",
        b"Content-Length: 3",
        b"",
        b"",
    ]


def test_a_head_carrying_the_edges_own_names_is_not_built() -> None:
    for name in (b"X-Podgate-Peer", b"x-podgate-scheme"):
        raw = b"GET /hub/home HTTP/1.1\r\nHost: h\r\n" + name + b": 1.1.1.1\r\n\r\n"
        assert _head(raw) is None


async def test_the_fast_lane_tells_the_hub_the_browsers_address_and_scheme(make_edge) -> None:
    edge = await make_edge(hub=told_app())
    raw = (
        b"GET /hub/home HTTP/1.1\r\nHost: x\r\nCookie: podgate-session=abc\r\n"
        b"Connection: close\r\n\r\n"
    )
    status, headers, body = split_answer(await raw_exchange(edge.port, raw))
    told = json.loads(body)
    assert status == 200
    assert edge.server.lane.handed_over == 0
    assert told["remote"] == "127.0.0.1" and told["scheme"] == "http"
    assert told["cookie"] == "podgate-session=abc"
    assert told["podgate_headers"] == []  # read by the hub's middleware, not passed on
    assert told["request_id"] == headers["x-request-id"]
    # The hub may set podgate's own cookies (a pod may not).
    assert "podgate-session=issued-by-the-hub" in headers["set-cookie"]


async def test_a_forged_peer_is_dropped_on_both_lanes(make_edge) -> None:
    forged = b"X-Podgate-Peer: 203.0.113.9\r\nX-Podgate-Scheme: https\r\n"
    for request in (
        # A plain head: the fast lane hands it over (it carries the edge's names).
        b"GET /hub/home HTTP/1.1\r\nHost: x\r\n" + forged + b"Connection: close\r\n\r\n",
        # HTTP/1.0: aiohttp's lane from the start.
        b"GET /hub/home HTTP/1.0\r\nHost: x\r\n" + forged + b"\r\n",
        # A chunked body: aiohttp's lane too.
        b"POST /hub/home HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        + forged
        + b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ):
        edge = await make_edge(hub=told_app())
        status, _, body = split_answer(await raw_exchange(edge.port, request))
        told = json.loads(body)
        assert status == 200, request
        assert told["remote"] == "127.0.0.1" and told["scheme"] == "http", request
        assert told["podgate_headers"] == []
        assert edge.server.lane.handed_over == 1
        if request.startswith(b"POST"):
            assert told["body"] == "abc"
