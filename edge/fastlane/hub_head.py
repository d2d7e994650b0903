"""The head the hub gets for a request the fast lane relays to it.

The hub is podgate's own control plane (edge.hub_upstream), not a pod: it
gets the browser's header lines as they came, session cookie and
X-Forwarded-* included (it judges those itself, from the peer it is told),
without the hop-by-hop ones, and with the three lines only the edge writes:
the request id, the browser's address and the connection's scheme. A head
that carries one of the edge's own header names is not built here (None):
aiohttp's lane relays it, dropping them (edge.hub_upstream.hub_request_headers).

Pure code on bytes, on a head edge.fastlane.head.parse_request accepted.
"""

from __future__ import annotations

from edge.fastlane.head import RequestHead, end_head
from edge.headers import HOP_BY_HOP
from edge.hub_upstream import PEER_HEADER, SCHEME_HEADER

_INTERNAL = frozenset((PEER_HEADER.lower().encode(), SCHEME_HEADER.lower().encode()))
# Written by the edge from what it decided, never copied from the browser.
_REWRITTEN = frozenset((b"content-length", b"x-request-id"))
_DROPPED = frozenset(name.encode() for name in HOP_BY_HOP) | _REWRITTEN


def hub_head(
    buffer: bytes, head: RequestHead, request_id: str, peer: bytes, scheme: str
) -> bytes | None:
    """The head in buffer[:head.end] as the hub gets it; None to hand the request over."""
    line_end = buffer.find(b"\r\n")
    fields = buffer[line_end + 2 : head.end - 4].split(b"\r\n")
    names = [line.partition(b":")[0].lower() for line in fields]
    if not _INTERNAL.isdisjoint(names):
        return None
    drop = _DROPPED
    if b"connection" in names:
        listed = {
            token.strip(b" \t").lower()
            for line, name in zip(fields, names, strict=True)
            if name == b"connection"
            for token in line.partition(b":")[2].split(b",")
        }
        drop = drop | listed
    lines = [buffer[:line_end]]
    lines.extend(line for line, name in zip(fields, names, strict=True) if name not in drop)
    lines.append(b"X-Request-Id: " + request_id.encode())
    lines.append(PEER_HEADER.encode() + b": " + peer)
    lines.append(SCHEME_HEADER.encode() + b": " + scheme.encode())
    return end_head(lines, head)
