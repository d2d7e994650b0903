"""Plain HTTP through the edge: echo, keep-alive reuse, headers, cookies, HEAD, 100-continue."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from yarl import URL

from edge.settings import EdgeSettings, parse_networks
from routes import RouteSource, RouteTable

PROXY_ONLY = EdgeSettings(control_enabled=False)


def api_table(url: str, **data: Any) -> RouteTable:
    table = RouteTable()
    table.add("/", url, source=RouteSource.API, data=data)
    return table


def header_map(record: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in record["headers"]}


async def test_get_is_echoed_with_path_query_and_host(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    url = URL(f"{edge.url}/some/path?a=1&b=%2F", encoded=True)
    async with client.get(url) as response:
        assert response.status == 200
        record = await response.json()
    assert record["method"] == "GET"
    assert record["path"] == "/some/path?a=1&b=%2F"
    headers = header_map(record)
    assert headers["host"] == f"127.0.0.1:{edge.port}"  # Host preserved, not the pod's
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == f"127.0.0.1:{edge.port}"
    assert headers["x-forwarded-port"] == str(edge.port)
    assert edge.stats.requests[("GET", 200, "api")] == 1


async def test_target_base_path_is_prepended(make_edge, echo_upstream, client) -> None:
    table = RouteTable()
    table.add("/app", echo_upstream.url + "/base", source=RouteSource.API)
    edge = await make_edge(table=table, settings=PROXY_ONLY)
    async with client.get(f"{edge.url}/app/x?q=1") as response:
        assert (await response.json())["path"] == "/base/app/x?q=1"


async def test_sequential_requests_reuse_one_upstream_connection(
    make_edge, echo_upstream, client
) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    for n in range(10):
        async with client.post(f"{edge.url}/n/{n}", data=b"body") as response:
            assert response.status == 200
            assert (await response.json())["body"] == "body"
    assert len(set(echo_upstream.log.peer_ports)) == 1


async def test_stale_pooled_connection_is_retried_for_get(make_edge, client) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    # An upstream that drops idle keep-alive connections almost at once.
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    server = TestServer(app, host="127.0.0.1", port=0, keepalive_timeout=0.05)
    await server.start_server()
    try:
        edge = await make_edge(
            table=api_table(str(server.make_url("")).rstrip("/")), settings=PROXY_ONLY
        )
        for _ in range(3):
            async with client.get(f"{edge.url}/x") as response:
                assert response.status == 200
                assert await response.text() == "hello"
            await asyncio.sleep(0.2)  # the pod closes the pooled connection meanwhile
    finally:
        await server.close()


async def test_hop_by_hop_headers_are_not_forwarded(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    sent = {
        "Connection": "keep-alive, X-Private",
        "X-Private": "secret",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Proxy-Authorization": "Basic eDp5",
        "Upgrade": "h2c",
        "X-Kept": "yes",
    }
    async with client.get(f"{edge.url}/", headers=sent) as response:
        headers = header_map(await response.json())
    for name in ("x-private", "keep-alive", "te", "proxy-authorization", "upgrade"):
        assert name not in headers, name
    assert headers["x-kept"] == "yes"


async def test_forwarded_headers_from_untrusted_client_are_replaced(
    make_edge, echo_upstream, client
) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    spoofed = {
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
    }
    async with client.get(f"{edge.url}/", headers=spoofed) as response:
        headers = header_map(await response.json())
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == f"127.0.0.1:{edge.port}"


async def test_forwarded_for_is_appended_for_trusted_proxy(
    make_edge, echo_upstream, client
) -> None:
    settings = EdgeSettings(control_enabled=False, trusted_proxies=parse_networks(["127.0.0.0/8"]))
    edge = await make_edge(table=api_table(echo_upstream.url), settings=settings)
    sent = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    async with client.get(f"{edge.url}/", headers=sent) as response:
        headers = header_map(await response.json())
    assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "https"


async def test_session_cookie_is_stripped_and_others_kept(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    cookie = "theme=dark; podgate-session=abc.def.ghi; _xsrf=token"
    async with client.get(f"{edge.url}/", headers={"Cookie": cookie}) as response:
        headers = header_map(await response.json())
    assert headers["cookie"] == "theme=dark; _xsrf=token"
    async with client.get(f"{edge.url}/", headers={"Cookie": "podgate-session=x"}) as response:
        assert "cookie" not in header_map(await response.json())


async def test_pod_token_is_added_upstream(make_edge, echo_upstream, client) -> None:
    table = api_table(echo_upstream.url, token="pod-secret")
    edge = await make_edge(table=table, settings=PROXY_ONLY)
    async with client.get(f"{edge.url}/", headers={"Authorization": "token forged"}) as response:
        assert header_map(await response.json())["authorization"] == "token pod-secret"


async def test_set_cookie_of_session_name_is_dropped(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    async with client.get(f"{edge.url}/?set_cookie=podgate-session,other") as response:
        assert response.status == 200
        set_cookies = response.headers.getall("Set-Cookie", [])
    assert len(set_cookies) == 1
    assert set_cookies[0].startswith("other=")


async def test_upstream_status_and_body_pass_through(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    async with client.delete(f"{edge.url}/thing?status=418") as response:
        assert response.status == 418
        assert json.loads(await response.text())["method"] == "DELETE"


async def test_head_has_headers_but_no_body_and_connection_stays_usable(
    make_edge, echo_upstream, client
) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    async with client.head(f"{edge.url}/file?download=5000") as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == "5000"
        assert await response.read() == b""
    async with client.get(f"{edge.url}/after-head") as response:
        assert (await response.json())["path"] == "/after-head"
    assert len(set(echo_upstream.log.peer_ports)) == 1


async def test_expect_100_continue(make_edge, echo_upstream, raw_http) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    try:
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        async with asyncio.timeout(5):
            interim = await reader.readuntil(b"\r\n\r\n")
            assert interim.startswith(b"HTTP/1.1 100")
            writer.write(b"hello")
            rest = await reader.read()
    finally:
        writer.close()
    head, _, body = rest.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    record = json.loads(body)
    assert record["body"] == "hello"
    assert "expect" not in header_map(record)


async def test_http10_client_without_host(make_edge, echo_upstream, raw_http) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    raw = await raw_http(edge.port, b"GET /old HTTP/1.0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"200"
    assert json.loads(body)["path"] == "/old"


async def test_many_concurrent_requests(make_edge, echo_upstream, client) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)

    async def one(n: int) -> str:
        async with client.get(f"{edge.url}/c/{n}") as response:
            return (await response.json())["path"]

    paths = await asyncio.gather(*(one(n) for n in range(50)))
    assert paths == [f"/c/{n}" for n in range(50)]


async def test_cleanup_closes_pooled_connections(make_edge, echo_upstream) -> None:
    edge = await make_edge(table=api_table(echo_upstream.url), settings=PROXY_ONLY)
    async with aiohttp.ClientSession() as session, session.get(f"{edge.url}/") as response:
        assert response.status == 200
    pool = edge.pool
    assert pool.idle_count() == 1
    await pool.close()
    assert pool.idle_count() == 0


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"], ids=["fast lane", "aiohttp lane"])
async def test_set_cookie_of_any_podgate_cookie_is_dropped(
    make_edge, echo_upstream, raw_http, version: str
) -> None:
    settings = EdgeSettings(control_enabled=False, hub_cookies=frozenset({"podgate-xsrf"}))
    edge = await make_edge(table=api_table(echo_upstream.url), settings=settings)
    request = (
        f"GET /?set_cookie=podgate-session,podgate-xsrf,theirs {version}\r\n"
        "Host: x\r\nConnection: close\r\n\r\n"
    )
    answer = await raw_http(edge.port, request.encode())
    head = answer.partition(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0].split(b" ")[1] == b"200"
    set_cookies = [line for line in head if line.lower().startswith(b"set-cookie:")]
    assert len(set_cookies) == 1 and b"theirs=" in set_cookies[0]
