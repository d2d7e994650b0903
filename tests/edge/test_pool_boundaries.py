"""A pod connection goes back to the pool only when the exchange ended exactly at a message end.

Both lanes draw on the edge's one pool (edge.upstream.pool): the fast lane for
plain HTTP/1.1 requests, edge.upstream.exchange for what aiohttp serves
(HTTP/1.0 here). A pod whose answer carries bytes past its own end (a second
response nobody asked for) must not have its connection reused, or the next
browser would read those bytes as its answer. A clean exchange is reused, so
the rule costs no keep-alive.
"""

from __future__ import annotations

import pytest

from edge.settings import EdgeSettings
from routes import RouteSource, RouteTable
from tests.edge.conftest import exchange

PROXY_ONLY = EdgeSettings(control_enabled=False)
# The request line's version picks the lane: HTTP/1.0 is handed over to aiohttp.
LANES = {"fast": b"HTTP/1.1", "aiohttp": b"HTTP/1.0"}
NEXT = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"


def api_table(url: str) -> RouteTable:
    table = RouteTable()
    table.add("/", url, source=RouteSource.API)
    return table


async def fetch(port: int, path: bytes, version: bytes) -> tuple[int, bytes]:
    """One request on a fresh browser connection: (status, body)."""
    return await exchange(port, b"GET " + path + b" " + version + b"\r\nHost: x\r\n\r\n")


@pytest.mark.parametrize("lane", list(LANES))
async def test_bytes_past_a_response_end_are_never_the_next_answer(
    make_edge, scripted_pod, lane: str
) -> None:
    scripted_pod.answers["/twice"] = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nPOISONED"
    )
    scripted_pod.answers["/next"] = NEXT
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    assert await fetch(edge.port, b"/twice", LANES[lane]) == (200, b"ok")
    assert await fetch(edge.port, b"/next", LANES[lane]) == (200, b"next")
    assert scripted_pod.connections == 2  # the first one was closed, not pooled
    assert edge.server.lane.handed_over == (2 if lane == "aiohttp" else 0)


@pytest.mark.parametrize("lane", list(LANES))
async def test_a_clean_exchange_keeps_its_pod_connection(
    make_edge, scripted_pod, lane: str
) -> None:
    scripted_pod.answers["/once"] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    scripted_pod.answers["/next"] = NEXT
    edge = await make_edge(table=api_table(scripted_pod.url), settings=PROXY_ONLY)
    assert await fetch(edge.port, b"/once", LANES[lane]) == (200, b"ok")
    assert await fetch(edge.port, b"/next", LANES[lane]) == (200, b"next")
    assert scripted_pod.connections == 1
