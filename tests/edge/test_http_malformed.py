"""Malformed HTTP over raw sockets: a 4xx or a close, never a 500 or a hang.

After each bad request, a good request on a fresh connection still works and
nothing reached the pod that should not have.
"""

from __future__ import annotations

import pytest

from edge.settings import EdgeSettings
from routes import RouteSource, RouteTable

PROXY_ONLY = EdgeSettings(control_enabled=False)

GOOD = b"GET /good HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

MALFORMED: dict[str, bytes] = {
    "bad request line": b"GARBAGE\r\n\r\n",
    "no version": b"GET /\r\n\r\n",
    "bad version": b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    "space in header name": b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
    "control char in header value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "header without colon": b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n",
    "content-length and chunked": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    ),
    "two content-lengths": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    ),
    "negative content-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "bad chunk size": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
    ),
    "unknown transfer-encoding": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nxxxx"
    ),
    "huge header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    "too many headers": b"GET / HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-%d: v\r\n" % n for n in range(500))
    + b"\r\n",
    "absolute-form target": b"GET http://evil.example/ HTTP/1.1\r\nHost: x\r\n\r\n",
}


def status_of(raw: bytes) -> int:
    if not raw.startswith(b"HTTP/1."):
        return 0  # closed without an answer
    return int(raw.split(b" ", 2)[1])


@pytest.mark.parametrize("name", sorted(MALFORMED))
async def test_malformed_request_gets_4xx_or_close(name, make_edge, echo_upstream, raw_http):
    table = RouteTable()
    table.add("/", echo_upstream.url, source=RouteSource.API)
    edge = await make_edge(table=table, settings=PROXY_ONLY)
    raw = await raw_http(edge.port, MALFORMED[name], seconds=5)
    status = status_of(raw)
    assert status == 0 or 400 <= status < 500, raw[:200]
    assert b"/smuggled" not in b"".join(r["path"].encode() for r in echo_upstream.log.requests)
    after = await raw_http(edge.port, GOOD)
    assert status_of(after) == 200


async def test_body_shorter_than_declared_never_reaches_pod_whole(
    make_edge, echo_upstream, raw_http
) -> None:
    import asyncio

    table = RouteTable()
    table.add("/", echo_upstream.url, source=RouteSource.API)
    edge = await make_edge(table=table, settings=PROXY_ONLY)
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    writer.write(b"POST /short?upload=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n12345")
    await writer.drain()
    writer.write_eof()  # the client stops sending: the body will never be complete
    async with asyncio.timeout(5):
        raw = await reader.read()
    writer.close()
    assert status_of(raw) in (0, 400)
    assert echo_upstream.log.bytes_received == 0  # the pod never got a "complete" body
    assert status_of(await raw_http(edge.port, GOOD)) == 200
    assert not any(code >= 500 for (_, code, _) in edge.stats.requests), edge.stats.requests


async def test_pipelined_requests_are_answered_in_order(make_edge, echo_upstream, raw_http) -> None:
    table = RouteTable()
    table.add("/", echo_upstream.url, source=RouteSource.API)
    edge = await make_edge(table=table, settings=PROXY_ONLY)
    raw = await raw_http(
        edge.port,
        b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert raw.count(b"HTTP/1.1 200") == 2
    assert raw.index(b'"/one"') < raw.index(b'"/two"')
