"""The WebSocket opening handshake as plain data: check it, write it to the pod, read the answer.

Pure functions over headers and bytes, so the hostile cases can be tested
without sockets. Nothing here does I/O, and nothing here ever decodes a
WebSocket frame: after the handshake the relay moves bytes, not messages.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Final

from multidict import CIMultiDict, CIMultiDictProxy

from edge.headers import HOP_BY_HOP

WEBSOCKET_VERSION: Final = "13"

# Passed from the browser to the pod untouched, so the two negotiate the
# subprotocol and permessage-deflate end to end; the edge never needs to.
PASSTHROUGH_REQUEST_HEADERS: Final = (
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
)

MAX_HEAD_BYTES: Final = 64 * 1024
MAX_HEADER_COUNT: Final = 128


class HandshakeRejected(Exception):
    """The browser's upgrade request is not a valid WebSocket handshake (answered 400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadPodResponse(Exception):
    """The pod answered the upgrade with something that is not an HTTP/1.x response head."""


@dataclass(frozen=True, slots=True)
class PodResponseHead:
    status: int
    reason: str
    headers: CIMultiDictProxy[str]


def _tokens(value: str | None) -> set[str]:
    if not value:
        return set()
    return {t.strip().lower() for t in value.split(",")}


def wants_websocket(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> bool:
    """True when a request asks to be upgraded to a WebSocket (cheap check for the router).

    Only the Upgrade header is looked at: a request that names websocket but
    gets the rest wrong is still a WebSocket attempt, and must get a 400
    from check_client_handshake rather than be proxied as plain HTTP.
    """
    upgrade = headers.get("Upgrade")
    return upgrade is not None and "websocket" in _tokens(upgrade)


def check_client_handshake(
    method: str, version: tuple[int, int], headers: CIMultiDictProxy[str]
) -> None:
    """Raise HandshakeRejected unless this is a well-formed RFC 6455 opening handshake."""
    if method != "GET":
        raise HandshakeRejected("a WebSocket handshake must be a GET request")
    if version < (1, 1):
        raise HandshakeRejected("a WebSocket handshake needs HTTP/1.1")
    if "websocket" not in _tokens(headers.get("Upgrade")):
        raise HandshakeRejected("Upgrade: websocket is missing")
    if "upgrade" not in _tokens(headers.get("Connection")):
        raise HandshakeRejected("Connection: Upgrade is missing")
    versions = headers.getall("Sec-WebSocket-Version", ())
    if len(versions) != 1 or versions[0].strip() != WEBSOCKET_VERSION:
        raise HandshakeRejected("unsupported Sec-WebSocket-Version (13 is supported)")
    keys = headers.getall("Sec-WebSocket-Key", ())
    if len(keys) != 1:
        # Two keys would reach the pod as two: refuse rather than pick one.
        raise HandshakeRejected("Sec-WebSocket-Key must be sent exactly once")
    key = keys[0].strip()
    try:
        raw_key = binascii.a2b_base64(key.encode("ascii"), strict_mode=True) if key else b""
    except (binascii.Error, UnicodeEncodeError):
        raw_key = b""
    if len(raw_key) != 16:
        raise HandshakeRejected("Sec-WebSocket-Key must be 16 bytes in base64")


def build_upgrade_request(
    path: str,
    headers: CIMultiDict[str],
    client_headers: CIMultiDictProxy[str],
    default_host: str,
) -> bytes:
    """The upgrade request for the pod: the edge's upstream headers plus the browser's handshake.

    `headers` come from the edge's header policy (hop-by-hop already gone,
    forwarding and token headers added). Header lines that would split the
    request (CR or LF in a name or value) are dropped rather than sent.
    """
    lines = [f"GET {path} HTTP/1.1"]
    has_host = False
    for name, value in headers.items():
        lname = name.lower()
        if lname in HOP_BY_HOP or lname.startswith("sec-websocket-"):
            continue
        if lname == "host":
            has_host = True
        lines.append(f"{name}: {value}")
    if not has_host:
        lines.append(f"Host: {default_host}")
    lines.append("Connection: Upgrade")
    lines.append("Upgrade: websocket")
    for name in PASSTHROUGH_REQUEST_HEADERS:
        for value in client_headers.getall(name, ()):
            lines.append(f"{name}: {value}")
    safe = [line for line in lines if "\r" not in line and "\n" not in line]
    return ("\r\n".join(safe) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def split_response_head(buffer: bytes | bytearray) -> tuple[bytes, bytes] | None:
    """(head, rest) once the blank line ending the head has arrived, else None.

    Raises BadPodResponse when the head grows past MAX_HEAD_BYTES without ending.
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise BadPodResponse("response head too large")
        return None
    if end > MAX_HEAD_BYTES:
        raise BadPodResponse("response head too large")
    return bytes(buffer[:end]), bytes(buffer[end + 4 :])


def parse_response_head(head: bytes) -> PodResponseHead:
    """Status and headers of the pod's answer; raises BadPodResponse for anything malformed."""
    text = head.decode("latin-1")
    status_line, *header_lines = text.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadPodResponse(f"bad status line {status_line[:80]!r}")
    code = parts[1]
    if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 599:
        raise BadPodResponse(f"bad status code {code[:10]!r}")
    if len(header_lines) > MAX_HEADER_COUNT:
        raise BadPodResponse("too many response headers")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name or "\t" in name:
            raise BadPodResponse(f"bad header line {line[:80]!r}")
        headers.add(name, value.strip())
    return PodResponseHead(int(code), parts[2] if len(parts) > 2 else "", CIMultiDictProxy(headers))
