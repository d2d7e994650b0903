"""The aiohttp lane reads pods through the edge's one pool, as strictly as the fast lane does.

A request line of HTTP/1.0, or a chunked request body, is handed over to aiohttp's
server, whose handler proxies over edge.upstream.exchange. Its pod connections come
from the same pool as the fast lane's (one lane's released connection serves the
other), the answer's body is taken out of its framing as it arrives, at most
read_buffer bytes wait for a slow browser before the pod's socket stops being read,
and a pod answer the fast lane refuses is a 502 here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from edge.app import edge_of
from edge.settings import EdgeSettings, UpstreamSettings
from routes import RouteSource, RouteTable
from tests.edge.conftest import exchange, read_response

PROXY_ONLY = EdgeSettings(control_enabled=False)
LANES = {"fast": b"HTTP/1.1", "aiohttp": b"HTTP/1.0"}
BODY = b"the whole body, every byte of it"


def api_table(url: str) -> RouteTable:
    table = RouteTable()
    table.add("/", url, source=RouteSource.API)
    return table


def get(path: bytes, version: bytes = b"HTTP/1.0") -> bytes:
    return b"GET " + path + b" " + version + b"\r\nHost: x\r\n\r\n"


async def test_a_connection_one_lane_released_serves_the_other(make_edge, scripted_pod) -> None:
    scripted_pod.answers["*"] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    assert await exchange(edge.port, get(b"/fast", b"HTTP/1.1")) == (200, b"ok")
    assert await exchange(edge.port, get(b"/aiohttp", b"HTTP/1.0")) == (200, b"ok")
    assert await exchange(edge.port, get(b"/fast-again", b"HTTP/1.1")) == (200, b"ok")
    assert edge.server.lane.handed_over == 1  # the middle one went through aiohttp
    assert scripted_pod.connections == 1  # and all three over one pod connection
    assert edge_of(edge.app).pool is edge.pool  # the aiohttp lane's pool is the fast lane's


FRAMINGS = {
    "length": (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(BODY), BODY), True),
    "chunked with extension and trailer": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;x=1\r\nthe \r\n%x\r\n%b\r\n0\r\nX-Trailer: t\r\n\r\n" % (len(BODY) - 4, BODY[4:]),
        True,
    ),
    "interim 103 first": (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(BODY), BODY),
        True,
    ),
    "HTTP/1.0 until close": (b"HTTP/1.0 200 OK\r\n\r\n" + BODY, False),
}


@pytest.mark.parametrize("name", list(FRAMINGS))
async def test_the_body_is_taken_out_of_its_framing(make_edge, scripted_pod, name: str) -> None:
    answer, keeps = FRAMINGS[name]
    # Byte by byte for the first 80 bytes: every parser state meets a packet edge.
    pieces: list[tuple[float, bytes | str]] = [(0.001, answer[i : i + 1]) for i in range(80)]
    pieces.append((0.0, answer[80:]))
    if not keeps:
        pieces.append((0.0, "close"))
    scripted_pod.answers["/framed"] = pieces
    scripted_pod.answers["/next"] = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    assert await exchange(edge.port, get(b"/framed")) == (200, BODY)
    assert await exchange(edge.port, get(b"/next")) == (200, b"next")
    assert scripted_pod.connections == (1 if keeps else 2)


HOSTILE = {
    "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
    "length and chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    ),
    "folded header": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    "bare LF": b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok",
    "switching protocols unasked": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    "not HTTP": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
}


@pytest.mark.parametrize("lane", list(LANES))
@pytest.mark.parametrize("name", list(HOSTILE))
async def test_both_lanes_refuse_the_same_pod_answers(
    make_edge, scripted_pod, name: str, lane: str
) -> None:
    scripted_pod.answers["/bad"] = [(0.0, HOSTILE[name]), (0.0, "close")]
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    status, _ = await exchange(edge.port, get(b"/bad", LANES[lane]))
    assert status == 502
    assert edge.stats.upstream_errors["protocol"] == 1


@pytest.mark.parametrize("lane", list(LANES))
async def test_bad_chunk_framing_cuts_the_browser_off_on_both_lanes(
    make_edge, scripted_pod, raw_http, lane: str
) -> None:
    scripted_pod.answers["/bad"] = [
        (0.0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n"),
        (0.05, b"zz\r\nPOISON\r\n0\r\n\r\n"),
        (0.0, "close"),
    ]
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    raw = await raw_http(edge.port, get(b"/bad", LANES[lane]))
    assert raw.split(b" ", 2)[1] == b"200"  # the head was out before the bad framing came
    assert b"POISON" not in raw
    if lane == "fast":
        assert not raw.endswith(b"0\r\n\r\n")  # no end of chunks: the browser sees it broke off
    assert edge.stats.upstream_errors["protocol"] == 1


async def test_a_slow_browser_slows_the_pod_down_not_the_edge_memory(make_edge) -> None:
    """The pod can write only what the sockets and read_buffer hold while nobody reads."""
    size = 48 * 2**20
    written = 0

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal written
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            piece = b"x" * 2**16
            for _ in range(size // len(piece)):
                writer.write(piece)
                await writer.drain()
                written += len(piece)
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(big, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        edge = await make_edge(table=api_table(f"http://127.0.0.1:{port}"), settings=PROXY_ONLY)
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port, limit=2**16)
        try:
            writer.write(get(b"/big"))
            await reader.readuntil(b"\r\n\r\n")
            for _ in range(50):  # bounded: until the pod stalls (about a second)
                before = written
                await asyncio.sleep(0.05)
                if written == before and written:
                    break
            stalled = written
            assert stalled < size // 2, f"the pod wrote {stalled} bytes into a browser not reading"
            received = 0
            async with asyncio.timeout(30):
                while chunk := await reader.read(2**20):
                    received += len(chunk)
            assert received == size  # and then all of it arrives
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


async def test_an_early_answer_to_a_streamed_body_is_relayed(make_edge) -> None:
    """A pod that refuses an upload before reading it all: its answer, then its connection goes."""
    connections = 0

    async def early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig")
            await writer.drain()
            await reader.read()  # until the edge closes this connection
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(early, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        edge = await make_edge(table=api_table(f"http://127.0.0.1:{port}"), settings=PROXY_ONLY)
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        try:
            # A chunked upload: handed over to aiohttp, which streams it as it comes.
            writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            async with asyncio.timeout(5):
                for _ in range(20):
                    writer.write(b"400\r\n" + b"a" * 0x400 + b"\r\n")
                    await asyncio.sleep(0.01)
                status, _, body = await read_response(reader)
                assert (status, body) == (413, b"big")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        assert edge.server.lane.handed_over == 1
        assert edge.stats.requests[("POST", 413, "api")] == 1
        for _ in range(100):  # bounded: the pod sees its connection closed, not pooled
            if edge.pool.idle_count() == 0 and connections == 1:
                break
            await asyncio.sleep(0.01)
        assert edge.pool.idle_count() == 0
    finally:
        server.close()
        await server.wait_closed()


async def test_the_pods_silence_is_timed_only_after_the_whole_upload(
    make_edge, echo_upstream
) -> None:
    settings = EdgeSettings(control_enabled=False, upstream=UpstreamSettings(read_timeout=0.3))
    edge = await make_edge(table=api_table(echo_upstream.url), settings=settings)
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    try:
        writer.write(
            b"POST /up?upload=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n"
        )
        for _ in range(6):  # 0.9 s of upload, three read timeouts long
            writer.write(b"3\r\nabc\r\n")
            await asyncio.sleep(0.15)
        writer.write(b"0\r\n\r\n")
        async with asyncio.timeout(5):
            status, _, body = await read_response(reader)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert (status, body) == (200, b'{"received": 18}')
    assert edge.server.lane.handed_over == 1


async def test_a_pod_answering_at_once_still_gets_the_rest_of_the_body(make_edge) -> None:
    """Full duplex: a pod that sends its head first and reads the upload after it."""

    async def duplex(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            received = 0
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                received += len(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")  # the empty trailer
            count = b"%d" % received
            writer.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(count), count))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(duplex, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        edge = await make_edge(table=api_table(f"http://127.0.0.1:{port}"), settings=PROXY_ONLY)
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        try:
            writer.write(
                b"POST /duplex HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Connection: close\r\n\r\n5\r\nfirst\r\n"
            )
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")  # the pod's head, before the rest
                assert head.startswith(b"HTTP/1.1 200")
                writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
                body = b""
                while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    body += await reader.readexactly(size)
                    await reader.readexactly(2)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        assert body == b"11"  # both pieces reached the pod after it had answered
        assert edge.server.lane.handed_over == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_a_burst_on_a_pod_that_accepts_nothing_queues_and_leaks_no_slot(make_edge) -> None:
    """Past MAX_OPENING_PER_TARGET the aiohttp lane queues in the shared pool too."""
    from edge.upstream.pool import MAX_OPENING_PER_TARGET

    # Listening with the smallest backlog and never accepting: connects hang, then time
    # out; the few the backlog took are never answered.
    deaf = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    deaf.bind(("127.0.0.1", 0))
    deaf.listen(1)
    port = deaf.getsockname()[1]
    settings = EdgeSettings(
        control_enabled=False, upstream=UpstreamSettings(connect_timeout=1.0, read_timeout=1.0)
    )
    try:
        edge = await make_edge(table=api_table(f"http://127.0.0.1:{port}"), settings=settings)
        browsers = MAX_OPENING_PER_TARGET + 16
        async with asyncio.timeout(15):
            answers = await asyncio.gather(
                *(exchange(edge.port, get(b"/burst/%d" % n)) for n in range(browsers))
            )
        assert {status for status, _ in answers} == {504}
        assert edge.pool.opening_peak == MAX_OPENING_PER_TARGET  # the rest queued
        assert edge.server.lane.handed_over == browsers
        for _ in range(100):  # bounded: every slot comes back
            if edge.pool.opening_count() == 0:
                break
            await asyncio.sleep(0.02)
        assert edge.pool.opening_count() == 0
    finally:
        deaf.close()


@pytest.mark.parametrize(
    ("request_line", "retried"),
    [(b"GET /b HTTP/1.0", True), (b"POST /b HTTP/1.0", False)],
    ids=["GET retried", "POST not retried"],
)
async def test_a_stale_pooled_connection_is_retried_once_only_when_safe(
    make_edge, scripted_pod, request_line: bytes, retried: bool
) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    calls: list[bytes] = []

    def answer(head: bytes) -> list[tuple[float, bytes | str]]:
        # The second request finds the pooled connection dead, as after a pod's idle timeout.
        calls.append(head)
        return [(0.0, "close")] if len(calls) == 2 else [(0.0, ok)]

    scripted_pod.answers["*"] = answer
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    assert await exchange(edge.port, get(b"/a")) == (200, b"ok")
    status, _ = await exchange(
        edge.port, request_line + b"\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    if retried:
        assert status == 200
        assert len(calls) == 3 and scripted_pod.connections == 2
        assert edge.stats.upstream_errors.get("reset", 0) == 0
    else:
        assert status == 503  # a POST may have been acted on: never sent twice
        assert len(calls) == 2
        assert edge.stats.upstream_errors["reset"] == 1
