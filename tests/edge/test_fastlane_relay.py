"""The fast lane relays plain requests itself: keep-alive, pipelining, bodies, response framings.

Every test here checks that the request stayed in the fast lane (nothing handed
over to aiohttp) and what the browser and the pod saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct

import aiohttp

from edge.settings import EdgeSettings
from routes import RouteSource, RouteTable
from tests.edge.conftest import read_response

PROXY_ONLY = EdgeSettings(control_enabled=False)


def api_table(url: str, *, token: str | None = None) -> RouteTable:
    table = RouteTable()
    table.add("/", url, source=RouteSource.API, data={"token": token} if token else None)
    return table


async def open_raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def close_raw(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_keep_alive_reuses_one_pod_connection(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    for n in range(20):
        async with client.get(f"{edge.url}/k/{n}") as response:
            assert response.status == 200
            assert (await response.json())["path"] == f"/k/{n}"
    assert edge.pool.opened == 1
    assert len(set(echo_upstream.log.peer_ports)) == 1
    assert edge.server.lane.handed_over == 0
    assert edge.stats.requests[("GET", 200, "api")] == 20


async def test_pipelined_requests_are_answered_in_order(make_edge, echo_upstream) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    reader, writer = await open_raw(edge.port)
    try:
        writer.write(
            b"".join(
                b"GET /p/%d?sleep=0.0%d HTTP/1.1\r\nHost: x\r\n\r\n" % (n, 3 - n) for n in range(3)
            )
        )
        async with asyncio.timeout(5):
            paths = [json.loads((await read_response(reader))[2])["path"] for _ in range(3)]
    finally:
        await close_raw(writer)
    assert paths == [f"/p/{n}?sleep=0.0{3 - n}" for n in range(3)]
    assert edge.server.lane.handed_over == 0


async def test_request_body_split_across_packets_reaches_the_pod_whole(
    make_edge, echo_upstream
) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    reader, writer = await open_raw(edge.port)
    try:
        writer.write(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhel")
        for piece in (b"lo ", b"wor"):
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(piece)
        await asyncio.sleep(0.05)
        # The last piece of the body and the next request in one packet.
        writer.write(b"ld" + b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            first = json.loads((await read_response(reader))[2])
            second = json.loads((await read_response(reader))[2])
    finally:
        await close_raw(writer)
    assert (first["method"], first["body"]) == ("POST", "hello world")
    assert second["path"] == "/after"
    assert edge.stats.bytes_to_upstream == 11
    assert edge.server.lane.handed_over == 0


async def test_large_upload_streams_with_its_length(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    size = 8 * 1024 * 1024
    async with client.post(f"{edge.url}/u?upload=1", data=b"u" * size) as response:
        assert response.status == 200
        assert (await response.json())["received"] == size
    assert edge.stats.bytes_to_upstream == size
    assert edge.server.lane.handed_over == 0


async def test_headers_follow_the_edge_rules(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(
        table=api_table(echo_upstream.url, token="pod-secret"), settings=PROXY_ONLY
    )
    async with client.get(
        f"{edge.url}/h",
        headers={
            "Cookie": "a=1; podgate-session=abc; b=2",
            "Connection": "keep-alive, X-Private",
            "X-Private": "drop me",
            "Keep-Alive": "timeout=5",
            "X-Forwarded-For": "6.6.6.6",
            "Authorization": "Bearer browser",
            "X-Kept": "yes",
        },
    ) as response:
        seen = {k.lower(): v for k, v in (await response.json())["headers"]}
    assert seen["cookie"] == "a=1; b=2"
    assert "x-private" not in seen and "keep-alive" not in seen
    assert seen["x-forwarded-for"] == "127.0.0.1"  # an untrusted client claims nothing
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == f"127.0.0.1:{edge.port}"
    assert seen["x-forwarded-port"] == str(edge.port)
    assert seen["host"] == f"127.0.0.1:{edge.port}"
    assert seen["authorization"] == "token pod-secret"
    assert seen["x-kept"] == "yes"
    assert edge.server.lane.handed_over == 0


async def test_trusted_proxy_forwarded_for_is_appended(make_edge, echo_upstream, client) -> None:
    from edge.settings import parse_networks

    settings = EdgeSettings(control_enabled=False, trusted_proxies=parse_networks(["127.0.0.1"]))
    edge = await make_edge(table=api_table(echo_upstream.url), settings=settings)
    async with client.get(
        f"{edge.url}/t", headers={"X-Forwarded-For": "10.1.1.1", "X-Forwarded-Proto": "https"}
    ) as response:
        seen = {k.lower(): v for k, v in (await response.json())["headers"]}
    assert seen["x-forwarded-for"] == "10.1.1.1, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "https"


async def test_headers_a_connection_header_lists_go_wherever_the_parser_put_them(
    make_edge, echo_upstream, client
) -> None:
    """As edge.headers drops them on the aiohttp lane: the edge then sets its own."""
    from edge.settings import parse_networks

    settings = EdgeSettings(control_enabled=False, trusted_proxies=parse_networks(["127.0.0.1"]))
    edge = await make_edge(table=api_table(echo_upstream.url), settings=settings)
    listed = "X-Forwarded-For, X-Forwarded-Proto, Authorization"
    async with client.get(
        f"{edge.url}/t",
        headers={
            "Connection": listed,
            "X-Forwarded-For": "10.1.1.1",
            "X-Forwarded-Proto": "https",
            "Authorization": "Bearer browser",
        },
    ) as response:
        seen = {k.lower(): v for k, v in (await response.json())["headers"]}
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert "authorization" not in seen
    assert edge.server.lane.handed_over == 0


async def test_session_set_cookie_from_the_pod_is_dropped(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    async with client.get(f"{edge.url}/c?set_cookie=podgate-session,theirs") as response:
        assert response.status == 200
        cookies = response.headers.getall("Set-Cookie")
    assert len(cookies) == 1 and cookies[0].startswith("theirs=")


async def test_chunked_response_split_byte_by_byte_is_relayed(make_edge, scripted_pod) -> None:
    body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
    scripted_pod.answers["/chunked"] = [(0.0, head)] + [
        (0.002, body[i : i + 1]) for i in range(len(body))
    ]
    scripted_pod.answers["/next"] = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    reader, writer = await open_raw(edge.port)
    try:
        writer.write(
            b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        async with asyncio.timeout(5):
            status, got_head, got = await read_response(reader)
            assert (status, got) == (200, b"hello world")
            assert b"connection:" not in got_head.lower()  # hop-by-hop, dropped
            assert (await read_response(reader))[2] == b"next"
    finally:
        await close_raw(writer)
    assert scripted_pod.connections == 1  # the chunked response ended cleanly: reused
    assert edge.stats.bytes_to_client == len(b"hello world") + 4


async def test_response_until_close_closes_the_browser_connection(make_edge, scripted_pod) -> None:
    scripted_pod.answers["/eof"] = [
        (0.0, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome"),
        (0.05, b" more"),
        (0.0, "close"),
    ]
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    reader, writer = await open_raw(edge.port)
    try:
        writer.write(b"GET /eof HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            status, head, body = await read_response(reader)
    finally:
        await close_raw(writer)
    assert (status, body) == (200, b"some more")
    assert b"connection: close" in head.lower()
    assert edge.stats.upstream_errors["reset"] == 0


async def test_unknown_transfer_coding_is_read_until_close(make_edge, scripted_pod) -> None:
    scripted_pod.answers["/coded"] = [
        (0.0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: x-custom\r\n\r\nall of it"),
        (0.0, "close"),
    ]
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    reader, writer = await open_raw(edge.port)
    try:
        writer.write(b"GET /coded HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            status, head, body = await read_response(reader)
    finally:
        await close_raw(writer)
    assert (status, body) == (200, b"all of it")
    assert b"transfer-encoding" not in head.lower()


async def test_head_204_304_and_interim_responses_have_no_body(make_edge, scripted_pod) -> None:
    scripted_pod.answers["/head"] = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    scripted_pod.answers["/nocontent"] = b"HTTP/1.1 204 No Content\r\n\r\n"
    scripted_pod.answers["/cached"] = b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n'
    scripted_pod.answers["/early"] = [
        (0.0, b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"),
        (0.05, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ]
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    reader, writer = await open_raw(edge.port)
    try:
        async with asyncio.timeout(5):
            writer.write(b"HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n")
            status, head, _ = await read_response(reader, head_request=True)
            assert status == 200 and b"content-length: 1000" in head.lower()
            writer.write(b"GET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader))[0] == 204
            writer.write(b"GET /cached HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader))[0] == 304
            writer.write(b"GET /early HTTP/1.1\r\nHost: x\r\n\r\n")
            interim = await read_response(reader)
            assert interim[0] == 103 and b"rel=preload" in interim[1]
            assert (await read_response(reader))[::2] == (200, b"ok")
    finally:
        await close_raw(writer)
    assert scripted_pod.connections == 1
    assert edge.server.lane.handed_over == 0


async def test_http10_pod_answer_is_relayed_as_http11(make_edge, scripted_pod, client) -> None:
    scripted_pod.answers["*"] = b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold"
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    for _ in range(2):
        async with client.get(f"{edge.url}/old") as response:
            assert response.status == 200 and await response.read() == b"old"
            assert response.version == aiohttp.HttpVersion11
    assert scripted_pod.connections == 2  # an HTTP/1.0 pod connection is never pooled


async def test_browser_connection_close_is_honoured(make_edge, echo_upstream) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    reader, writer = await open_raw(edge.port)
    try:
        writer.write(b"GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(5):
            status, head, _ = await read_response(reader)
            assert await reader.read() == b""  # then the edge closes
    finally:
        await close_raw(writer)
    assert status == 200 and b"connection: close" in head.lower()
    assert edge.server.lane.handed_over == 0


async def test_a_burst_on_a_cold_pool_opens_a_bounded_number_at_once(
    make_edge, echo_upstream
) -> None:
    from edge.upstream.pool import MAX_OPENING_PER_TARGET

    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(n: int) -> int:
            async with session.get(f"{edge.url}/burst/{n}?sleep=0.05") as response:
                await response.read()
                return response.status

        async with asyncio.timeout(20):
            statuses = await asyncio.gather(*(one(n) for n in range(200)))
    assert statuses == [200] * 200
    print("opening peak", edge.pool.opening_peak, "opened", edge.pool.opened)
    assert edge.pool.opening_peak <= MAX_OPENING_PER_TARGET
    assert edge.stats.requests[("GET", 200, "api")] == 200


async def test_browsers_leaving_while_their_pod_connection_opens_leak_no_slot(
    make_edge, echo_upstream, client
) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    for n in range(150):
        # The request and the reset arrive together: the edge learns of both in one go.
        _, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        writer.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        writer.write(b"GET /gone/%d?sleep=0.05 HTTP/1.1\r\nHost: x\r\n\r\n" % n)
        writer.transport.abort()
        if n % 10 == 0:
            await asyncio.sleep(0)
    for _ in range(100):  # bounded: up to ~2 s
        if edge.pool.opening_count() == 0:
            break
        await asyncio.sleep(0.02)
    assert edge.pool.opening_count() == 0
    async with client.get(f"{edge.url}/after") as response:
        assert response.status == 200
