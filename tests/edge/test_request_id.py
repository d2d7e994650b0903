"""Request ids: made by the edge (or a trusted proxy's kept), sent to the pod, returned, logged.

Checked in both lanes: the fast lane, and aiohttp's path (reached here with a
head too large for the fast lane, which aiohttp still accepts), for plain
requests, WebSocket handshakes and error pages.
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from edge.request_id import MAX_LENGTH, RequestIds, well_formed
from edge.settings import EdgeSettings, parse_networks
from podgate.logs import RequestIdField
from routes import RouteSource, RouteTable

PROXY_ONLY = EdgeSettings(control_enabled=False)
TRUSTING_LOOPBACK = EdgeSettings(
    control_enabled=False, trusted_proxies=parse_networks(["127.0.0.0/8"])
)
# Two 5,000-byte headers: beyond the fast lane's head limit, within aiohttp's.
TO_AIOHTTP = {"X-Pad-1": "a" * 5000, "X-Pad-2": "b" * 5000}
MADE_ID = re.compile(r"[0-9a-f]{12}-[0-9a-f]+")


def api_table(url: str) -> RouteTable:
    table = RouteTable()
    table.add("/", url, source=RouteSource.API)
    return table


def sent_id(record: dict) -> list[str]:
    """The X-Request-Id values an echo upstream received."""
    return [value for name, value in record["headers"] if name.lower() == "x-request-id"]


@pytest.mark.parametrize("extra", [{}, TO_AIOHTTP], ids=["fast_lane", "aiohttp"])
async def test_each_request_gets_an_id_the_pod_and_the_browser_both_see(
    make_edge, echo_upstream, client, extra
) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    returned = []
    for n in range(3):
        async with client.get(f"{edge.url}/r/{n}", headers=extra) as response:
            assert response.status == 200
            returned.append(response.headers["X-Request-Id"])
            assert sent_id(await response.json()) == [returned[-1]]
    assert all(MADE_ID.fullmatch(value) for value in returned)
    assert len(set(returned)) == 3
    assert edge.server.lane.handed_over == (1 if extra else 0)  # one keep-alive connection


@pytest.mark.parametrize("extra", [{}, TO_AIOHTTP], ids=["fast_lane", "aiohttp"])
async def test_an_untrusted_client_cannot_choose_its_id(
    make_edge, echo_upstream, client, extra
) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    headers = {"X-Request-Id": "forged-id", **extra}
    async with client.get(f"{edge.url}/x", headers=headers) as response:
        record = await response.json()
        assert response.headers["X-Request-Id"] != "forged-id"
        assert sent_id(record) == [response.headers["X-Request-Id"]]


@pytest.mark.parametrize("extra", [{}, TO_AIOHTTP], ids=["fast_lane", "aiohttp"])
async def test_a_trusted_proxy_id_is_kept_when_well_formed(
    make_edge, echo_upstream, client, extra
) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=TRUSTING_LOOPBACK)
    async with client.get(f"{edge.url}/x", headers={"X-Request-Id": "lb-42", **extra}) as r:
        assert r.headers["X-Request-Id"] == "lb-42"
        assert sent_id(await r.json()) == ["lb-42"]
    too_long = "x" * (MAX_LENGTH + 1)
    async with client.get(f"{edge.url}/x", headers={"X-Request-Id": too_long, **extra}) as r:
        assert MADE_ID.fullmatch(r.headers["X-Request-Id"])
        assert sent_id(await r.json()) == [r.headers["X-Request-Id"]]


async def test_error_pages_carry_the_id_and_their_log_line_names_it(
    make_edge, refused_url, client, caplog
) -> None:
    edge = await make_edge(table=api_table(refused_url), settings=PROXY_ONLY)
    # As podgate's log handler does: the aiohttp path's id comes from the task's context.
    caplog.handler.addFilter(RequestIdField())
    with caplog.at_level(logging.INFO):
        for extra in ({}, TO_AIOHTTP):
            async with client.get(f"{edge.url}/down", headers=extra) as response:
                assert response.status == 503
                request_id = response.headers["X-Request-Id"]
            logged = [r for r in caplog.records if getattr(r, "request_id", None) == request_id]
            assert logged, f"no log record names {request_id}"
            assert "upstream" in logged[0].getMessage()


async def _websocket_pod(seen: list[web.Request]) -> TestServer:
    async def echo(request: web.Request) -> web.WebSocketResponse:
        seen.append(request)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str("echo:" + message.data)
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


@pytest.mark.parametrize("extra", [{}, TO_AIOHTTP], ids=["fast_lane", "aiohttp"])
async def test_websocket_handshakes_carry_the_id_both_ways(make_edge, client, extra) -> None:
    seen: list[web.Request] = []
    pod = await _websocket_pod(seen)
    try:
        edge = await make_edge(table=api_table(str(pod.make_url("")).rstrip("/")))
        async with client.ws_connect(f"{edge.url}/ws", headers=extra) as ws:
            await ws.send_str("hi")
            async with asyncio.timeout(5):
                assert (await ws.receive()).data == "echo:hi"
            returned = ws._response.headers["X-Request-Id"]
        assert MADE_ID.fullmatch(returned)
        assert seen[0].headers.getall("X-Request-Id") == [returned]
        assert edge.server.lane.handed_over == (1 if extra else 0)
    finally:
        await pod.close()


def test_well_formed_ids() -> None:
    assert well_formed("abc-123") and well_formed(b"abc-123")
    for bad in ("", "has space", "tab\there", "caf\u00e9", "x" * (MAX_LENGTH + 1)):
        assert not well_formed(bad) and not well_formed(bad.encode())


def test_made_ids_are_unique_and_prefixed_per_process() -> None:
    first, second = RequestIds(), RequestIds()
    ids = {first.new() for _ in range(1000)}
    assert len(ids) == 1000
    assert first.new().split("-")[0] != second.new().split("-")[0]
