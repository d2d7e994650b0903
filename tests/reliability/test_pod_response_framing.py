"""How the edge reads a pod's response body, for each framing HTTP/1.x allows (and some not).

The pod here is a raw socket server answering scripted bytes, so framings
aiohttp would never produce can be sent: Content-Length, chunked, a body
delimited by the connection closing (HTTP/1.0 servers and any HTTP/1.1 one
that sends no length), unknown transfer codings, conflicting lengths. The
user must get exactly the pod's body, or a 502; never a different body that
looks complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from reliability_kit import gate_before_raw_pod, port_of, raw_send

from podgate.assembly import Podgate

BODY = b"the whole body, every byte of it"

# path -> (what the pod sends, then closes; the body the user must get, or None for 502 only)
FRAMINGS: dict[str, tuple[bytes, bytes | None]] = {
    "/content-length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(BODY), BODY),
        BODY,
    ),
    "/chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%b\r\n0\r\n\r\n"
        % (len(BODY), BODY),
        BODY,
    ),
    "/http10-until-close": (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + BODY, BODY),
    "/http11-until-close": (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BODY, BODY),
    "/unknown-coding-until-close": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: x-custom\r\n\r\n" + BODY,
        BODY,
    ),
    "/length-and-chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"%x\r\n%b\r\n0\r\n\r\n" % (len(BODY), BODY),
        None,
    ),
    "/two-lengths": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: %d\r\n\r\n%b" % (len(BODY), BODY),
        None,
    ),
}

KNOWN_BUGS: dict[str, str] = {}


@pytest.fixture
async def scripted_gate(tmp_path: Path) -> AsyncIterator[Podgate]:
    """Proxy-only podgate in front of a pod that answers FRAMINGS[path] and closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode()
        if path == "/poison":  # a 204 followed by bytes that look like another response
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nPOISONED")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")  # would be read as the answer
        writer.write(FRAMINGS.get(path, FRAMINGS["/content-length"])[0])
        await writer.drain()

    async with gate_before_raw_pod(tmp_path, answer) as gate:
        yield gate


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[p]))
        if p in KNOWN_BUGS
        else p
        for p in FRAMINGS
    ],
)
async def test_user_gets_the_whole_body_or_a_502(scripted_gate: Podgate, path: str) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: podgate.test\r\nConnection: close\r\n\r\n"
    outcome = await raw_send(port_of(scripted_gate.public_url), request.encode(), seconds=3)
    expected = FRAMINGS[path][1]
    assert len(outcome.responses) == 1, outcome
    response = outcome.responses[0]
    if expected is None:
        assert response.status == 502, response
    else:
        assert (response.status, response.body) == (200, expected)


async def test_pod_answering_twice_cannot_poison_the_next_answer(scripted_gate: Podgate) -> None:
    port = port_of(scripted_gate.public_url)
    first = await raw_send(port, b"GET /poison HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
    assert first.statuses == [204]
    for _ in range(3):
        after = await raw_send(
            port, b"GET /chunked HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
        )
        assert [(r.status, r.body) for r in after.responses] == [(200, BODY)]
