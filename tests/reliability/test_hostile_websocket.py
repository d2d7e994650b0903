"""Hostile WebSocket handshakes and frames against podgate as assembled, both modes.

A bad handshake is a 400 from the edge before any pod is contacted. Bad
frames after a good handshake are relayed as bytes (the edge never decodes
frames), so the pod refuses them with a close; either way the client sees a
close, never a hang, and the edge keeps serving WebSockets and HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import struct

import aiohttp
import pytest
from reliability_kit import Gate

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


@pytest.fixture
def gate(gate_and_tls_gate: Gate) -> Gate:
    """Every test here also runs with HTTPS on the public port."""
    return gate_and_tls_gate


def upgrade(
    *,
    method: str = "GET",
    version: str = "HTTP/1.1",
    path: str = "/open/ws",
    headers: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
) -> bytes:
    base = {
        "Host": "podgate.test",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    base.update(headers or {})
    lines = [f"{method} {path} {version}"] + [f"{k}: {v}" for k, v in base.items() if k not in drop]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


BAD_HANDSHAKES: dict[str, bytes] = {
    "POST upgrade": upgrade(method="POST"),
    "HTTP/1.0 upgrade": upgrade(version="HTTP/1.0"),
    "version 8": upgrade(headers={"Sec-WebSocket-Version": "8"}),
    "no version": upgrade(drop=("Sec-WebSocket-Version",)),
    "no key": upgrade(drop=("Sec-WebSocket-Key",)),
    "key not base64": upgrade(headers={"Sec-WebSocket-Key": "not base64 at all!"}),
    "key of 15 bytes": upgrade(headers={"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA"}),
    "no Connection: Upgrade": upgrade(headers={"Connection": "keep-alive"}),
}


@pytest.mark.parametrize("name", list(BAD_HANDSHAKES))
async def test_bad_handshake_is_400_and_never_reaches_pod(name: str, gate: Gate) -> None:
    outcome = await gate.raw(BAD_HANDSHAKES[name], seconds=3.0)
    assert not outcome.hung
    assert all(400 <= s < 500 for s in outcome.statuses), outcome.statuses
    assert gate.open_pod.log.websockets == 0
    assert gate.pod_requests() == 0
    await assert_websocket_works(gate)


def frame(
    opcode: int, payload: bytes, *, mask: bool = True, rsv: int = 0, fin: bool = True
) -> bytes:
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", first, (0x80 if mask else 0) | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, size)
    else:
        head = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


BAD_FRAMES: dict[str, bytes] = {
    "unmasked client frame": frame(0x1, b"hello", mask=False),
    "reserved opcode 3": frame(0x3, b"x"),
    "reserved control opcode 0xB": frame(0xB, b"x"),
    "RSV bits without an extension": frame(0x1, b"hello", rsv=0b111),
    "continuation with nothing to continue": frame(0x0, b"x"),
    "fragmented ping": frame(0x9, b"x", fin=False),
    "control frame over 125 bytes": frame(0x9, b"p" * 200),
    "invalid UTF-8 in text": frame(0x1, b"\xff\xfe\xfd"),
    "close code 999": frame(0x8, struct.pack("!H", 999)),
    "one-byte close payload": frame(0x8, b"\x03"),
    "length of 2**63 announced": b"\x82\xff" + struct.pack("!Q", 1 << 63) + b"\0\0\0\0",
    "length beyond the pod's limit": frame(0x2, b"z" * ((1 << 20) + 10)),
}


async def open_raw_websocket(gate: Gate) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    tls = gate.client_tls
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", gate.port, ssl=tls, server_hostname="localhost" if tls else None
    )
    writer.write(upgrade())
    async with asyncio.timeout(3):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


@pytest.mark.parametrize("name", list(BAD_FRAMES))
async def test_bad_frame_ends_in_a_close_not_a_hang(name: str, gate: Gate) -> None:
    reader, writer = await open_raw_websocket(gate)
    try:
        writer.write(BAD_FRAMES[name])
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.drain()
        got = b""
        async with asyncio.timeout(3):
            while chunk := await reader.read(65536):
                got += chunk
                if got[:1] in (b"\x88", b"\x81"):  # the pod's close, or its echo
                    break
    except (ConnectionError, ssl.SSLError):
        got = b""  # a reset is a close too (over TLS, a cut without close_notify)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    if got[:1] == b"\x81":
        # aiohttp as the pod accepts unmasked frames; the edge relays bytes by design.
        assert name == "unmasked client frame", got[:20]
    elif got:
        assert got[0] == 0x88, got[:20]  # a close frame (1002/1007/1009), nothing else
        code = struct.unpack("!H", got[2:4])[0]
        assert code in (1002, 1007, 1009), code
    await assert_websocket_works(gate)


async def assert_websocket_works(gate: Gate) -> None:
    connector = aiohttp.TCPConnector(ssl=gate.client_tls or True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.ws_connect(
            gate.url + "/open/ws", timeout=aiohttp.ClientWSTimeout(ws_close=3)
        ) as ws,
    ):
        await ws.send_str("still there?")
        msg = await asyncio.wait_for(ws.receive(), 3)
        assert msg.data == "open:still there?"
        async with session.get(gate.url + "/open/after") as r:
            assert r.status == 200


async def test_refused_upgrade_never_becomes_a_tunnel(gate: Gate) -> None:
    """A pod refusing the upgrade must leave the connection parsed as HTTP by the edge.

    Otherwise the next bytes would flow to the pod unrouted (a request to bob's
    server with no session, smuggled through alice's or the open route).
    """
    follow = b"GET /user/bob/secret HTTP/1.1\r\nHost: podgate.test\r\n\r\n"
    for data in (
        upgrade(path="/open/ws?refuse=1") + follow,
        [upgrade(path="/open/ws?refuse=1"), follow],
    ):
        outcome = await gate.raw(data, expect=2, pause=0.2)
        assert outcome.statuses[0] == 403  # the pod's refusal, relayed
        assert outcome.statuses[1:] in ([], [302]), outcome.statuses  # then the edge's own answer
        assert gate.bob.log.requests == []
        assert [r["method"] for r in gate.open_pod.log.requests] == ["UPGRADE-REFUSED"]
        gate.open_pod.log.requests.clear()
    await assert_websocket_works(gate)
