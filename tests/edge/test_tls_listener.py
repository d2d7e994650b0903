"""HTTPS on the public listener: both lanes, WebSockets, plain HTTP refused, certificates reloaded.

The edge is served as the wiring serves it (edge.server.serve_public) with a
certificate from a throwaway CA (tests/tls_kit.py); clients trust only that CA
and check the host name, as browsers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tls_kit import DAY, CertAuthority, issue, make_ca, served_certificate

from edge.app import build_public_app
from edge.server import PublicServer, serve_public
from edge.settings import EdgeSettings
from edge.tls import ServerCertificate
from edge.tls.sniff import PLAIN_HTTP_ANSWER
from metrics.edge_stats import EdgeStats
from routes import RouteSource, RouteTable
from tests.edge.conftest import Upstream

PROXY_ONLY = EdgeSettings(control_enabled=False, hsts_seconds=600)


@pytest.fixture
def ca(tmp_path: Path) -> CertAuthority:
    return make_ca(tmp_path / "ca")


@pytest.fixture
async def tls_edge(
    tmp_path: Path, ca: CertAuthority, echo_upstream: Upstream, session_codec: Any
) -> AsyncIterator[tuple[PublicServer, ServerCertificate]]:
    """/open and /ws proxied to the echo upstream over HTTPS; /hub/... by a small hub app."""
    leaf = issue(ca, tmp_path / "certs")
    certificate = ServerCertificate(str(leaf.cert_file), str(leaf.key_file))
    certificate.load()
    table = RouteTable()
    table.add("/open", echo_upstream.url, source=RouteSource.API)
    app = build_public_app(
        table=table, settings=PROXY_ONLY, stats=EdgeStats(), sessions=session_codec
    )
    server = await serve_public(app, "127.0.0.1", 0, tls=lambda: certificate.context)
    try:
        yield server, certificate
    finally:
        await server.close()


def https(server: PublicServer, path: str) -> str:
    return f"https://localhost:{server.port}{path}"


@pytest.fixture
async def tls_client(ca: CertAuthority) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=ca.client_context(), resolver=_LoopbackResolver())
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        yield session


class _LoopbackResolver(aiohttp.abc.AbstractResolver):
    """localhost is 127.0.0.1 (never ::1): the listener is IPv4 loopback."""

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict[str, Any]]:
        return [
            {"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
             "proto": 0, "flags": 0}
        ]  # fmt: skip

    async def close(self) -> None:
        return None


async def test_fast_lane_serves_https_and_tells_the_pod(tls_edge, tls_client) -> None:
    server, _ = tls_edge
    async with tls_client.get(https(server, "/open/x")) as response:
        assert response.status == 200
        seen = json.loads(await response.text())
        assert response.headers["Strict-Transport-Security"] == "max-age=600"
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-port"] == str(server.port)
    assert server.lane.handed_over == 0  # the fast lane answered, over TLS


async def test_handed_over_connection_is_served_by_aiohttp_over_tls(tls_edge, tls_client) -> None:
    server, _ = tls_edge

    # A chunked upload is never the fast lane's: the connection goes to aiohttp.
    async def body() -> AsyncIterator[bytes]:
        yield b"hello "
        yield b"world"

    async with tls_client.post(https(server, "/open/up"), data=body()) as response:
        assert response.status == 200
        seen = json.loads(await response.text())
        assert response.headers["Strict-Transport-Security"] == "max-age=600"
    assert seen["body"] == "hello world"
    assert {k.lower(): v for k, v in seen["headers"]}["x-forwarded-proto"] == "https"
    assert server.lane.handed_over == 1
    async with tls_client.get(https(server, "/nowhere")) as response:
        assert response.status == 404  # the edge's own page, still over TLS


async def test_websocket_over_tls_on_both_lanes(tls_edge, tls_client, ca) -> None:
    server, _ = tls_edge
    app = web.Application()

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(f"{request.headers.get('X-Forwarded-Proto')}:{message.data}")
        return ws

    app.router.add_get("/{tail:.*}", echo)
    pod = web.AppRunner(app)
    await pod.setup()
    site = web.TCPSite(pod, "127.0.0.1", 0)
    await site.start()
    try:
        port = pod.addresses[0][1]
        server.lane.edge.table.add("/ws", f"http://127.0.0.1:{port}", source=RouteSource.API)
        # A fresh connection: the fast lane switches it and pumps the TLS bytes.
        async with tls_client.ws_connect(https(server, "/ws/a")) as ws:
            await ws.send_str("one")
            assert (await ws.receive(timeout=5)).data == "https:one"
        assert server.lane.handed_over == 0
        # A connection handed over first (a 404 on an unrouted path): aiohttp relays it.
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=ca.client_context(), server_hostname="localhost"
        )
        try:
            writer.write(b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 404")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            assert server.lane.handed_over == 1
            writer.write(
                b"GET /ws/b HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            mask = b"\x01\x02\x03\x04"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"two"))
            writer.write(b"\x81\x83" + mask + payload)  # one masked text frame
            frame = await asyncio.wait_for(reader.readexactly(2 + len("https:two")), 5)
            assert frame == b"\x81\x09https:two"
        finally:
            writer.close()
    finally:
        await pod.cleanup()


async def test_plain_http_to_the_tls_port_gets_a_clear_400(tls_edge) -> None:
    server, _ = tls_edge
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /open/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        received = b""
        while chunk := await asyncio.to_thread(sock.recv, 65536):
            received += chunk
    assert received == PLAIN_HTTP_ANSWER
    assert received.startswith(b"HTTP/1.1 400 ")
    assert b"HTTPS" in received


async def test_silent_connection_and_garbage_do_not_hang_the_listener(tls_edge, tls_client):
    server, _ = tls_edge
    silent = socket.create_connection(("127.0.0.1", server.port))
    try:
        garbage = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        garbage.sendall(b"\x00\x01\x02")
        answer = await asyncio.to_thread(garbage.recv, 1000)  # the loop must stay free
        assert answer.startswith(b"HTTP/1.1 400 ")
        garbage.close()
        async with tls_client.get(https(server, "/open/after")) as response:
            assert response.status == 200  # others are served while one connection is silent
    finally:
        silent.close()


async def test_one_address_cannot_hold_more_than_its_share_of_handshakes(
    tmp_path, ca, session_codec
) -> None:
    leaf = issue(ca, tmp_path / "capped")
    certificate = ServerCertificate(str(leaf.cert_file), str(leaf.key_file))
    certificate.load()
    app = build_public_app(
        table=RouteTable(), settings=PROXY_ONLY, stats=EdgeStats(), sessions=session_codec
    )
    server = await serve_public(
        app, "127.0.0.1", 0, tls=lambda: certificate.context, tls_per_address=3
    )
    held = []
    try:
        # Two silent connections and one stuck in its handshake: the cap of three.
        for _ in range(2):
            held.append(socket.create_connection(("127.0.0.1", server.port)))
        stuck = socket.create_connection(("127.0.0.1", server.port))
        stuck.sendall(b"\x16\x03\x01")  # a handshake record that never goes on
        held.append(stuck)
        await asyncio.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        held.append(extra)
        closed = await asyncio.to_thread(extra.recv, 100)
        assert closed == b""  # closed at once, nothing said
        for sock in held:
            sock.close()
        held.clear()
        await asyncio.sleep(0.2)  # the listener sees them go and counts them out
        _, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=ca.client_context(), server_hostname="localhost"
        )
        writer.close()  # a fresh one is served again
    finally:
        for sock in held:
            sock.close()
        await server.close()


async def test_tls_is_modern_and_alpn_says_http_1_1(tls_edge, ca, caplog) -> None:
    server, _ = tls_edge
    caplog.set_level(logging.DEBUG)
    context = ca.client_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=context, server_hostname="localhost"
    )
    tls = writer.get_extra_info("ssl_object")
    assert tls.selected_alpn_protocol() == "http/1.1"
    assert tls.version() in ("TLSv1.2", "TLSv1.3")
    writer.close()
    old = ca.client_context()
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with contextlib.suppress(ssl.SSLError):
        old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=old, server_hostname="localhost"
        )
    weak = ca.client_context()
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    weak.set_ciphers("AES128-SHA")  # RSA key exchange, CBC, SHA-1: refused
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=weak, server_hostname="localhost"
        )
    await asyncio.sleep(0.1)
    # A refused handshake is the client's problem: nothing louder than debug, no traceback.
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not loud, [(r.name, r.getMessage()) for r in loud]


async def peer_serial(port: int, ca: CertAuthority) -> int:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ca.client_context(), server_hostname="localhost"
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return served_certificate(der).serial_number


def replace_files(leaf_dir: Path, new_cert: Path, new_key: Path) -> None:
    """Swap the files in place the way a mounted Secret rotates: new inodes, renamed over."""
    for new, name in ((new_key, "server.key"), (new_cert, "server.crt")):
        staged = leaf_dir / f".{name}.new"
        staged.write_bytes(new.read_bytes())
        os.replace(staged, leaf_dir / name)


async def test_rotated_files_serve_new_connections_open_ones_go_on(
    tls_edge, tls_client, ca, tmp_path, caplog
) -> None:
    server, certificate = tls_edge
    old_serial = await peer_serial(server.port, ca)
    # A keep-alive connection opened before the rotation.
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=ca.client_context(), server_hostname="localhost"
    )
    request = b"GET /open/keep HTTP/1.1\r\nHost: localhost\r\n\r\n"
    writer.write(request)
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    fresh = issue(ca, tmp_path / "fresh")
    replace_files(Path(certificate.cert_file).parent, fresh.cert_file, fresh.key_file)
    with caplog.at_level(logging.INFO, logger="edge.tls.reloader"):
        assert certificate.check() is True
    assert "TLS certificate reloaded" in caplog.text
    assert await peer_serial(server.port, ca) == fresh.cert.serial_number != old_serial
    # The old connection is still open, with its old certificate, and still served.
    assert (
        served_certificate(
            writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        ).serial_number
        == old_serial
    )
    await reader.read(65536)  # the rest of the first response
    writer.write(request)
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    writer.close()


@pytest.mark.parametrize("problem", ["expired", "mismatched key", "garbage"])
async def test_a_bad_rotation_is_refused_and_the_old_certificate_stays(
    tls_edge, ca, tmp_path, caplog, problem: str
) -> None:
    server, certificate = tls_edge
    serial = await peer_serial(server.port, ca)
    bad = issue(ca, tmp_path / "bad", valid_from=-3 * DAY, valid_until=-DAY)
    if problem == "mismatched key":
        bad = issue(ca, tmp_path / "bad")
        other = issue(ca, tmp_path / "other")
        bad.key_file.write_bytes(other.key_file.read_bytes())
    elif problem == "garbage":
        bad.cert_file.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n")
    replace_files(Path(certificate.cert_file).parent, bad.cert_file, bad.key_file)
    with caplog.at_level(logging.INFO, logger="edge.tls.reloader"):
        assert certificate.check() is False
        assert certificate.check() is False  # the same bad files: said once, not per poll
    refusals = [r for r in caplog.records if "reload refused" in r.getMessage()]
    assert len(refusals) == 1, caplog.text
    message = refusals[0].getMessage()
    assert "server.crt" in message or "server.key" in message
    reason = {"expired": "expired", "mismatched key": "does not match", "garbage": "PEM"}
    assert reason[problem] in message
    assert await peer_serial(server.port, ca) == serial


async def test_the_watcher_notices_a_rotation_by_itself(tls_edge, ca, tmp_path) -> None:
    server, certificate = tls_edge
    certificate.start(0.05)
    try:
        fresh = issue(ca, tmp_path / "fresh")
        replace_files(Path(certificate.cert_file).parent, fresh.cert_file, fresh.key_file)
        for _ in range(100):
            if await peer_serial(server.port, ca) == fresh.cert.serial_number:
                break
            await asyncio.sleep(0.05)
        assert await peer_serial(server.port, ca) == fresh.cert.serial_number
    finally:
        await certificate.stop()


@pytest.fixture(params=["asyncio", "uvloop"], scope="module")
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """Every test here on both loops: uvloop's TLS transports are its own code, not asyncio's."""
    if request.param == "uvloop":
        import uvloop

        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()
