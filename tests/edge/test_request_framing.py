"""A request's framing is decided once, from its head, and never changed on the way to the pod.

A Connection header may name extra hop-by-hop headers, but never the ones that
delimit or address a message (Content-Length, Transfer-Encoding, Host): such a
request is refused with a 400 on either lane, so its body can never reach a pod
as a second request, nor its answer reach another browser through the pool.
`Connection: Upgrade` on a WebSocket handshake, and the usual keep-alive and
close tokens, keep working.
"""

from __future__ import annotations

import json
import logging

import pytest

from edge.settings import EdgeSettings
from routes import RouteSource, RouteTable
from tests.edge.conftest import exchange

PROXY_ONLY = EdgeSettings(control_enabled=False)

# A whole request hidden in a body; the pod answers it after a second, so an
# answer left behind on a pooled connection would meet the next browser's request.
SMUGGLED = b"GET /smuggled?sleep=1 HTTP/1.1\r\nHost: x\r\n\r\n"


def api_table(url: str) -> RouteTable:
    table = RouteTable()
    table.add("/", url, source=RouteSource.API)
    return table


def hiding(connection: bytes) -> bytes:
    """A POST whose body is SMUGGLED, with this Connection header value."""
    return (
        b"POST /first HTTP/1.1\r\nHost: x\r\nConnection: " + connection + b"\r\n"
        b"Content-Length: %d\r\n\r\n" % len(SMUGGLED)
    ) + SMUGGLED


@pytest.mark.parametrize(
    "connection",
    [b"Content-Length", b"keep-alive, content-length", b"Transfer-Encoding", b"Host"],
)
async def test_connection_naming_a_framing_header_is_refused_and_smuggles_nothing(
    make_edge, echo_upstream, connection: bytes
) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    status, body = await exchange(edge.port, hiding(connection))
    # The next browser, on a connection of its own, gets its own answer (before the
    # fix it got the smuggled request's, left on the pooled pod connection).
    next_status, next_body = await exchange(edge.port, b"GET /victim HTTP/1.1\r\nHost: x\r\n\r\n")
    assert next_status == 200
    assert json.loads(next_body)["path"] == "/victim", next_body
    assert status == 400, body
    assert b"The Connection header may not name" in body  # the edge's answer, not the pod's
    assert [r["path"] for r in echo_upstream.log.requests] == ["/victim"]


async def test_connection_close_and_keep_alive_tokens_still_work(make_edge, echo_upstream) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    data = b"POST /up HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
    status, body = await exchange(edge.port, data + b"Content-Length: 5\r\n\r\nhello")
    assert status == 200
    seen = json.loads(body)
    assert seen["body"] == "hello"
    names = {name.lower() for name, _ in seen["headers"]}
    assert "x-hop" not in names and "content-length" in names


async def test_refusal_is_one_log_line_without_a_traceback(
    make_edge, echo_upstream, caplog: pytest.LogCaptureFixture
) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    caplog.set_level(logging.DEBUG, logger="edge")
    status, _ = await exchange(edge.port, hiding(b"Content-Length"))
    assert status == 400
    said = [r for r in caplog.records if r.name.startswith("edge")]
    assert [r.getMessage() for r in said] == [
        "refused POST /first: the Connection header names content-length"
    ]
    assert said[0].levelno == logging.INFO and said[0].exc_info is None
