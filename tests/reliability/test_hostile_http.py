"""Hostile HTTP over raw sockets against podgate as `podgate run` assembles it, both modes.

Each input gets a 4xx or a closed connection, never a 5xx or a hang; a good
request on a fresh connection works afterwards; and every request a pod saw
was answered to the client as its own response, so nothing was smuggled past
the edge's framing. Inputs that HTTP allows (HTTP/1.0, pipelining, a
well-formed chunked body...) may be served, and then must be served whole
and in order.
"""

from __future__ import annotations

import logging

import pytest
from reliability_kit import Gate, RawOutcome

H = b"Host: podgate.test"


@pytest.fixture
def gate(gate_and_tls_gate: Gate) -> Gate:
    """Every test here also runs with HTTPS on the public port."""
    return gate_and_tls_gate


SMUGGLED = b"GET /open/smuggled HTTP/1.1\r\n" + H + b"\r\n\r\n"


def req(line: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    return line + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


# Inputs the edge must refuse (4xx) or drop (close): never served.
MUST_REFUSE: dict[str, bytes] = {
    # request lines
    "garbage request line": b"HELLO\r\n\r\n",
    "invalid method token": req(b"G@T /open HTTP/1.1", H),
    "missing version": b"GET /open\r\n\r\n",
    "HTTP/2.0 in an HTTP/1 request line": req(b"GET /open HTTP/2.0", H),
    "HTTP/9.9": req(b"GET /open HTTP/9.9", H),
    "extra token after version": req(b"GET /open HTTP/1.1 extra", H),
    "space inside target": req(b"GET /open /x HTTP/1.1", H),
    "control byte in target": req(b"GET /open/\x01x HTTP/1.1", H),
    "NUL in request line": req(b"GET /open\x00 HTTP/1.1", H),
    "absolute-form target": req(b"GET http://127.0.0.2/open HTTP/1.1", H),
    "asterisk-form target": req(b"OPTIONS * HTTP/1.1", H),
    "CONNECT authority-form": req(b"CONNECT 127.0.0.2:443 HTTP/1.1", b"Host: 127.0.0.2:443"),
    "100 KiB target": req(b"GET /open/" + b"a" * 100_000 + b" HTTP/1.1", H),
    # header names and values
    "space before colon": req(b"GET /open HTTP/1.1", H, b"X-A : v"),
    "separator in header name": req(b"GET /open HTTP/1.1", H, b"X(A): v"),
    "empty header name": req(b"GET /open HTTP/1.1", H, b": v"),
    "header line without colon": req(b"GET /open HTTP/1.1", H, b"NoColonHere"),
    "bare CR in header value": req(b"GET /open HTTP/1.1", H, b"X-A: a\rb"),
    "NUL in header value": req(b"GET /open HTTP/1.1", H, b"X-A: a\x00b"),
    "control byte in header value": req(b"GET /open HTTP/1.1", H, b"X-A: a\x07b"),
    "100 KiB header value": req(b"GET /open HTTP/1.1", H, b"X-Big: " + b"a" * 100_000),
    "100 KiB header name": req(b"GET /open HTTP/1.1", H, b"X" * 100_000 + b": v"),
    "20,000 headers": req(b"GET /open HTTP/1.1", H, *(b"X-%d: v" % n for n in range(20_000))),
    # request smuggling shapes (a second request hides in the first one's body)
    "CL.TE": req(
        b"POST /open HTTP/1.1",
        H,
        b"Content-Length: 6",
        b"Transfer-Encoding: chunked",
        body=b"0\r\n\r\n" + SMUGGLED,
    ),
    "TE.CL": req(
        b"POST /open HTTP/1.1",
        H,
        b"Transfer-Encoding: chunked",
        b"Content-Length: 3",
        body=b"8\r\nSMUGGLED\r\n0\r\n\r\n" + SMUGGLED,
    ),
    "two different Content-Lengths": req(
        b"POST /open HTTP/1.1", H, b"Content-Length: 5", b"Content-Length: 40", body=b"hello"
    ),
    "Content-Length list of different values": req(
        b"POST /open HTTP/1.1", H, b"Content-Length: 5, 40", body=b"hello"
    ),
    "negative Content-Length": req(b"POST /open HTTP/1.1", H, b"Content-Length: -5"),
    "Content-Length with plus sign": req(
        b"POST /open HTTP/1.1", H, b"Content-Length: +5", body=b"hello"
    ),
    "hex Content-Length": req(b"POST /open HTTP/1.1", H, b"Content-Length: 0x5", body=b"hello"),
    "Content-Length with inner space": req(
        b"POST /open HTTP/1.1", H, b"Content-Length: 1 0", body=b"helloworld"
    ),
    "Content-Length overflowing 64 bits": req(
        b"POST /open HTTP/1.1", H, b"Content-Length: 99999999999999999999999", body=b"x"
    ),
    "Transfer-Encoding: chunked, identity": req(
        b"POST /open HTTP/1.1",
        H,
        b"Transfer-Encoding: chunked, identity",
        body=b"5\r\nhello\r\n0\r\n\r\n",
    ),
    "Transfer-Encoding identity then chunked headers": req(
        b"POST /open HTTP/1.1",
        H,
        b"Transfer-Encoding: chunked",
        b"Transfer-Encoding: identity",
        body=b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
    ),
    "Transfer-Encoding with obs-text": req(
        b"POST /open HTTP/1.1",
        H,
        b"Transfer-Encoding: \xffchunked",
        body=b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
    ),
    "Transfer-Encoding: xchunked": req(
        b"POST /open HTTP/1.1", H, b"Transfer-Encoding: xchunked", body=b"5\r\nhello\r\n0\r\n\r\n"
    ),
    "Transfer-Encoding with space before colon": req(
        b"POST /open HTTP/1.1",
        H,
        b"Transfer-Encoding : chunked",
        b"Content-Length: 3",
        body=b"0\r\n\r\n" + SMUGGLED,
    ),
    "unknown transfer coding": req(
        b"POST /open HTTP/1.1", H, b"Transfer-Encoding: gzip", body=b"xxxx"
    ),
    "Transfer-Encoding in HTTP/1.0": req(
        b"POST /open HTTP/1.0",
        H,
        b"Transfer-Encoding: chunked",
        b"Content-Length: 3",
        body=b"0\r\n\r\n" + SMUGGLED,
    ),
    # a Connection header may not unframe a message by naming its framing headers
    "Connection names Content-Length (the body is a request)": req(
        b"POST /open HTTP/1.1",
        H,
        b"Connection: Content-Length",
        b"Content-Length: %d" % len(SMUGGLED),
        body=SMUGGLED,
    ),
    "Connection names content-length among other tokens": req(
        b"POST /open HTTP/1.1",
        H,
        b"Connection: keep-alive, content-length",
        b"Content-Length: %d" % len(SMUGGLED),
        body=SMUGGLED,
    ),
    "Connection names Transfer-Encoding": req(
        b"POST /open HTTP/1.1",
        H,
        b"Connection: Transfer-Encoding",
        b"Transfer-Encoding: chunked",
        body=b"%x\r\n%b\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED),
    ),
    "Connection names Host": req(b"GET /open HTTP/1.1", H, b"Connection: Host"),
    # chunked framing
    "chunk size not hex": req(
        b"POST /open HTTP/1.1", H, b"Transfer-Encoding: chunked", body=b"zz\r\nhello\r\n0\r\n\r\n"
    ),
    "negative chunk size": req(
        b"POST /open HTTP/1.1", H, b"Transfer-Encoding: chunked", body=b"-5\r\nhello\r\n0\r\n\r\n"
    ),
    "chunk size overflowing 64 bits": req(
        b"POST /open HTTP/1.1",
        H,
        b"Transfer-Encoding: chunked",
        body=b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    ),
    "chunk longer than its size": req(
        b"POST /open HTTP/1.1",
        H,
        b"Transfer-Encoding: chunked",
        body=b"3\r\nhelloGET /open/smuggled HTTP/1.1\r\n\r\n0\r\n\r\n",
    ),
    "chunk size with 0x prefix": req(
        b"POST /open HTTP/1.1",
        H,
        b"Transfer-Encoding: chunked",
        body=b"0x5\r\nhello\r\n0\r\n\r\n",
    ),
    "obs-fold in Transfer-Encoding": req(
        b"POST /open HTTP/1.1",
        H,
        b"Transfer-Encoding: identity",
        b" chunked",
        body=b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
    ),
    # HTTP/1.1 requires exactly one Host
    "HTTP/1.1 without Host": req(b"GET /open HTTP/1.1"),
    "two Host headers": req(b"GET /open HTTP/1.1", H, b"Host: other.test"),
}

# Inputs HTTP allows (or allows a server to accept): if served, served whole and in order.
MAY_SERVE: dict[str, tuple[bytes, int]] = {
    "HTTP/1.0 without Host": (req(b"GET /open HTTP/1.0"), 1),
    "obs-fold in an ordinary header": (req(b"GET /open HTTP/1.1", H, b"X-A: a", b"  folded"), 1),
    "obs-text in a header value": (req(b"GET /open HTTP/1.1", H, b"X-A: caf\xe9"), 1),
    "two equal Content-Lengths": (
        req(b"POST /open HTTP/1.1", H, b"Content-Length: 5", b"Content-Length: 5", body=b"hello"),
        1,
    ),
    "chunked with extensions and trailer": (
        req(
            b"POST /open HTTP/1.1",
            H,
            b"Transfer-Encoding: chunked",
            body=b"5;name=value\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n",
        ),
        1,
    ),
    "Transfer-Encoding: CHUNKED": (
        req(b"POST /open HTTP/1.1", H, b"Transfer-Encoding: CHUNKED", body=b"0\r\n\r\n"),
        1,
    ),
    "bare LF line endings": (b"GET /open HTTP/1.1\n" + H + b"\n\n", 1),
    "body longer than Content-Length is the next request": (
        req(b"POST /open/first HTTP/1.1", H, b"Content-Length: 5", body=b"hello" + SMUGGLED),
        2,
    ),
    "three pipelined requests in one write": (
        req(b"GET /open/one HTTP/1.1", H)
        + req(b"POST /open/two HTTP/1.1", H, b"Content-Length: 3", body=b"abc")
        + req(b"GET /open/three HTTP/1.1", H, b"Connection: close"),
        3,
    ),
}


def pod_answers(outcome: RawOutcome) -> int:
    """Responses that came from a pod (each pod names itself in X-Pod)."""
    return sum(1 for r in outcome.responses if "x-pod" in r.headers)


async def assert_next_request_works(gate: Gate) -> None:
    after = await gate.raw(req(b"GET /open/after HTTP/1.1", H, b"Connection: close"))
    assert after.statuses == [200], after
    assert after.responses[0].headers["x-pod"] == "open"


# Found by this suite, pinned until the edge is fixed (the lead removes the xfail).
KNOWN_BUGS: dict[str, str] = {}


def refused(status: int) -> bool:
    """4xx, or 505 for an HTTP version the edge does not speak."""
    return 400 <= status < 500 or status == 505


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[n]))
        if n in KNOWN_BUGS
        else n
        for n in MUST_REFUSE
    ],
)
async def test_hostile_request_is_refused_or_dropped(name: str, gate: Gate) -> None:
    outcome = await gate.raw(MUST_REFUSE[name], seconds=3.0)
    assert not outcome.hung, f"{name}: no answer and no close within 3 s"
    assert all(refused(s) for s in outcome.statuses), (name, outcome.statuses)
    assert gate.pod_requests() == 0, [p.log.requests for p in (gate.open_pod,)]
    await assert_next_request_works(gate)


@pytest.mark.parametrize("name", list(MAY_SERVE))
async def test_lawful_odd_request_is_served_whole_or_refused(name: str, gate: Gate) -> None:
    data, count = MAY_SERVE[name]
    outcome = await gate.raw(data, expect=count, seconds=3.0)
    assert not outcome.hung, f"{name}: no answer and no close within 3 s"
    assert all(s == 200 or 400 <= s < 500 for s in outcome.statuses), (name, outcome.statuses)
    # Each request a pod saw came back as a response of its own: nothing smuggled.
    assert gate.pod_requests() == pod_answers(outcome), (gate.open_pod.log.paths(), outcome)
    if pod_answers(outcome) == count > 1:
        seen = gate.open_pod.log.paths()
        assert seen == sorted(seen, key=lambda p: data.index(p.encode())), seen
    await assert_next_request_works(gate)


async def test_pipelined_requests_answered_in_order_on_one_connection(gate: Gate) -> None:
    paths = [f"/open/p{n}" for n in range(5)]
    data = b"".join(req(f"GET {p} HTTP/1.1".encode(), H) for p in paths)
    outcome = await gate.raw(data, expect=5)
    assert outcome.statuses == [200] * 5
    assert [r.body.count(p.encode()) for r, p in zip(outcome.responses, paths, strict=True)] == [
        1
    ] * 5
    assert gate.open_pod.log.paths() == paths


async def test_bad_request_in_a_pipeline_stops_the_rest(gate: Gate) -> None:
    data = (
        req(b"GET /open/first HTTP/1.1", H)
        + req(b"POST /open HTTP/1.1", H, b"Content-Length: 1", b"Transfer-Encoding: chunked")
        + SMUGGLED
    )
    outcome = await gate.raw(data, expect=2)
    # aiohttp parses the whole write before serving it, so the good first request may
    # be refused with the bad one; what must never happen is the smuggled GET arriving.
    assert outcome.statuses and outcome.statuses[-1] == 400, outcome.statuses
    assert all(s == 200 or refused(s) for s in outcome.statuses), outcome.statuses
    assert pod_answers(outcome) == gate.pod_requests()
    assert "/open/smuggled" not in gate.open_pod.log.paths()
    await assert_next_request_works(gate)


async def test_body_shorter_than_declared_then_hang_up_never_completes_upstream(
    gate: Gate,
) -> None:
    data = req(b"POST /open/short HTTP/1.1", H, b"Content-Length: 100", body=b"12345")
    outcome = await gate.raw([data, b""], seconds=1.0)
    assert all(400 <= s < 500 for s in outcome.statuses), outcome.statuses
    assert all(r["body_size"] == 100 for r in gate.open_pod.log.requests)  # never a short "whole"
    await assert_next_request_works(gate)


async def test_user_route_without_session_redirects_not_proxies(gate: Gate) -> None:
    outcome = await gate.raw(req(b"GET /user/alice/tree HTTP/1.1", H, b"Connection: close"))
    if gate.mode == "control":
        assert outcome.statuses == [302]
        assert outcome.responses[0].headers["location"].startswith("/hub/login?next=")
    else:
        assert outcome.statuses[0] in (302, 403, 404), outcome.statuses
    assert gate.pod_requests() == 0


async def test_malformed_request_is_not_logged_as_an_error(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outcome = await gate.raw(MUST_REFUSE["CL.TE"])
    assert outcome.statuses == [400]
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [(r.name, r.getMessage()) for r in loud]


H2C = req(
    b"GET /open/h2c HTTP/1.1",
    H,
    b"Upgrade: h2c",
    b"Connection: Upgrade, HTTP2-Settings",
    b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
)


async def test_request_after_a_non_websocket_upgrade_in_separate_writes_is_routed(
    gate: Gate,
) -> None:
    follow = req(b"GET /user/bob/secret HTTP/1.1", H)
    outcome = await gate.raw([H2C, follow], expect=2, pause=0.2)
    # Served without upgrading; the edge then closes a connection that asked for
    # another protocol (so a pipelined tail can never be misread).
    assert outcome.statuses == [200, 302] or (outcome.statuses == [200] and outcome.closed)
    assert gate.bob.log.requests == []


async def test_request_pipelined_after_a_non_websocket_upgrade_is_answered_or_closed(
    gate: Gate,
) -> None:
    follow = req(b"GET /user/bob/secret HTTP/1.1", H)
    outcome = await gate.raw(H2C + follow, expect=2, seconds=2)
    assert gate.bob.log.requests == []  # never smuggled to bob, whatever happens
    assert outcome.statuses == [200, 302] or (outcome.statuses == [200] and outcome.closed), outcome
