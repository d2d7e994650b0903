"""Strict parsing of a browser's request head, and the head the pod gets instead.

`parse_request` accepts only a conservative subset of HTTP/1.1 (origin-form
target, a few methods, token header names, clean values, no Transfer-Encoding,
Upgrade or Expect, at most one plain Content-Length, a Host, a Connection
header naming none of edge.headers.FRAMING, at most
edge.headers.MAX_COOKIE_HEADERS Cookie lines) and answers None for everything
else, so that aiohttp's parser judges every unusual request.
Framing is decided here, once: the body's length is a number on the head, and
the pod's Content-Length line is written from that number, never kept from the
browser's lines, so no hop-by-hop rule can remove or change it.
A head that asks for a protocol upgrade is parsed too but marked `upgrade`: the
caller either serves it as a WebSocket handshake (edge.fastlane.websocket) or
hands it over; it is never relayed as a plain request.
`upstream_head` applies edge.headers' rules (hop-by-hop headers dropped,
session cookie cut out, X-Forwarded-* set, pod token added) at the bytes level.

Pure functions on bytes: no I/O, never looks at a body, never decides routing.
"""

from __future__ import annotations

import re

from edge.headers import (
    FIELD_LINES,
    FRAMING,
    HOP_BY_HOP,
    MAX_COOKIE_HEADERS,
    forwarded_port,
    strip_session_cookie,
)
from edge.origin import OriginClaims, first_value

# Heads longer than this are handed over, so aiohttp answers them (431/400).
MAX_HEAD = 8192
# More header lines than this are handed over too (aiohttp's own limit is higher).
MAX_FIELDS = 100

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_REQUEST_LINE = re.compile(
    rb"(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (/[!-\"$-~]*) HTTP/1\.1"  # no '#', no space
)

_HOP_BY_HOP = frozenset(name.encode() for name in HOP_BY_HOP)
_HAND_OVER = frozenset((b"transfer-encoding", b"expect"))
_FRAMING = frozenset(name.encode() for name in FRAMING)
_XFF = b"x-forwarded-for"
_FORWARDED = frozenset((_XFF, b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port"))
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
# Headers edge.origin reads; X-Forwarded-* lines are kept only from a trusted proxy.
_ORIGIN_NAMES = frozenset(
    (b"origin", b"sec-fetch-site", b"authorization", b"x-forwarded-proto", b"x-forwarded-host")
)
# What a header name means to the parser (see header_kinds).
_HOST, _LENGTH, _COOKIE, _REFUSE, _HOP, _FORWARDED_BY, _POD_TOKEN, _UPGRADE, _REQUEST_ID = range(9)


class RequestHead:
    """One validated request head: what routing needs, and the lines kept for the pod."""

    __slots__ = (
        "close",
        "content_length",
        "cookies",
        "end",
        "forwarded",
        "has_length",
        "host",
        "kept",
        "method",
        "own_token",
        "prior_xff",
        "raw_path",
        "request_id",
        "target",
        "upgrade",
    )

    def __init__(self) -> None:
        self.method = "GET"
        self.target = b"/"
        self.raw_path = "/"
        self.host = ""
        self.content_length = 0
        self.has_length = False
        self.close = False
        self.cookies: list[str] = []  # Cookie header values that carry the session cookie
        self.kept: list[bytes] = []  # header lines forwarded as they are (no CRLF)
        self.prior_xff: list[bytes] = []  # a trusted proxy's X-Forwarded-For values
        self.forwarded: set[bytes] = set()  # X-Forwarded-* names a trusted proxy already set
        self.own_token: list[bytes] = []  # the browser's lines of the pod-token header
        self.end = 0  # index just past the head's blank line
        self.upgrade = False  # an Upgrade header or Connection: upgrade (never relayed as is)
        self.request_id = (
            b""  # X-Request-Id from a trusted proxy, not yet checked (edge.request_id)
        )


def header_kinds(token_header: bytes) -> dict[bytes, int]:
    """Lower-case header names the request parser treats specially, and how."""
    kinds = dict.fromkeys(_HOP_BY_HOP, _HOP)
    kinds.update(dict.fromkeys(_FORWARDED, _FORWARDED_BY))
    kinds[token_header] = _POD_TOKEN
    kinds.update(dict.fromkeys(_HAND_OVER, _REFUSE))
    kinds[b"upgrade"] = _UPGRADE
    kinds[b"x-request-id"] = _REQUEST_ID  # the fast lane sends its own line
    kinds.update({b"host": _HOST, b"content-length": _LENGTH, b"cookie": _COOKIE})
    return kinds


def parse_request(
    buffer: bytes, end: int, cookie_name: bytes, trusted: bool, kinds: dict[bytes, int]
) -> RequestHead | None:
    """The head in buffer[:end + 4] (end: index of its CRLFCRLF), or None to hand it over."""
    if end + 4 > MAX_HEAD:
        return None
    line_end = buffer.find(b"\r\n")
    match = _REQUEST_LINE.fullmatch(buffer, 0, line_end)
    if match is None or line_end == end:  # no headers: no Host
        return None
    if FIELD_LINES.fullmatch(buffer, line_end + 2, end + 2) is None:
        return None
    head = RequestHead()
    head.method = match.group(1).decode("ascii")
    head.target = target = match.group(2)
    head.raw_path = target.decode("ascii")
    head.end = end + 4
    kept = head.kept
    host: bytes | None = None
    length: bytes | None = None
    listed: list[bytes] = []
    cookie_lines = 0
    lines = buffer[line_end + 2 : end].split(b"\r\n")
    if len(lines) > MAX_FIELDS:
        return None
    get_kind = kinds.get
    for line in lines:
        name, _, value = line.partition(b":")
        lower = name.lower()
        kind = get_kind(lower)
        if kind is None:
            kept.append(line)  # most headers: forwarded as they came
        elif kind == _HOST:
            if host is not None:
                return None
            host = value.strip(b" \t")
            kept.append(line)
        elif kind == _LENGTH:
            if length is not None:
                return None
            length = value.strip(b" \t")  # the pod's line is written from the number
        elif kind == _COOKIE:
            cookie_lines += 1
            if cookie_lines > MAX_COOKIE_HEADERS:
                return None  # the full path refuses it (431), as for any lane
            if cookie_name not in value:
                kept.append(line)
                continue
            value = value.strip(b" \t")
            text = value.decode("utf-8", "surrogateescape")
            head.cookies.append(text)
            if b";" in value or not value.startswith(cookie_name + b"="):
                stripped = strip_session_cookie(text, cookie_name.decode())
                if stripped:
                    kept.append(name + b": " + stripped.encode("utf-8", "surrogateescape"))
            # else: only the session cookie; nothing of this header goes to the pod
        elif kind == _REFUSE:
            return None
        elif kind == _HOP:
            if lower == b"connection":
                tokens = [t.strip(b" \t").lower() for t in value.split(b",")]
                if not _FRAMING.isdisjoint(tokens):
                    return None  # aiohttp's path refuses it: it would unframe the body
                if b"upgrade" in tokens:
                    head.upgrade = True
                if b"close" in tokens:
                    head.close = True
                listed.extend(tokens)
        elif kind == _FORWARDED_BY:
            if trusted:
                if lower == _XFF:
                    head.prior_xff.append(value.strip(b" \t"))
                else:
                    head.forwarded.add(lower)
                    kept.append(line)
        elif kind == _UPGRADE:
            head.upgrade = True  # hop-by-hop: the WebSocket path adds its own
        elif kind == _REQUEST_ID:
            if trusted:
                head.request_id = value.strip(b" \t")
        else:  # the pod-token header
            head.own_token.append(line)  # replaced when the route has a pod token
    if host is None or not host or not host.isascii():
        return None
    head.host = host.decode("ascii")
    if length is not None:
        if not length.isdigit() or len(length) > 15:
            return None
        head.content_length = int(length)
        head.has_length = True
    if listed:
        # Names the Connection header lists are hop-by-hop for this message too,
        # wherever the parser set them aside (as edge.headers drops them).
        drop = {t for t in listed if t}
        head.kept = [line for line in kept if line.partition(b":")[0].lower() not in drop]
        if head.own_token:
            head.own_token = [
                line for line in head.own_token if line.partition(b":")[0].lower() not in drop
            ]
        if _XFF in drop:
            head.prior_xff = []
        head.forwarded -= drop  # the edge then sets its own
    return head


def origin_claims(head: RequestHead, trusted: bool, scheme: str = "http") -> OriginClaims:
    """What the head says about where it comes from (edge.origin); read only when asked."""
    found: dict[bytes, str] = {}
    for line in (*head.kept, *head.own_token):
        name, _, value = line.partition(b":")
        lower = name.lower()
        if lower in _ORIGIN_NAMES and lower not in found:
            found[lower] = value.strip(b" \t").decode("latin-1")
    host = head.host  # scheme: the connection's own (https when the listener does TLS)
    if trusted:
        scheme = first_value(found.get(b"x-forwarded-proto")) or scheme
        host = first_value(found.get(b"x-forwarded-host")) or host
    return OriginClaims(
        scheme=scheme,
        host=host,
        origin=found.get(b"origin"),
        fetch_site=found.get(b"sec-fetch-site"),
        authorization=found.get(b"authorization"),
    )


def forwarded_lines(head: RequestHead, peer_xff: bytes, scheme: str = "http") -> bytes:
    """The X-Forwarded-* lines for the pod; `peer_xff` is the client's own address.

    For a client that is not a trusted proxy they depend on its address and Host
    only, so a connection may reuse them while its Host stays the same.
    """
    prior = head.prior_xff
    lines = [b"X-Forwarded-For: " + (b", ".join([*prior, peer_xff]) if prior else peer_xff)]
    forwarded = head.forwarded
    if b"x-forwarded-proto" not in forwarded:
        lines.append(b"X-Forwarded-Proto: " + scheme.encode())
    if b"x-forwarded-host" not in forwarded:
        lines.append(b"X-Forwarded-Host: " + head.host.encode())
    if b"x-forwarded-port" not in forwarded:
        lines.append(b"X-Forwarded-Port: " + forwarded_port(head.host, scheme).encode())
    return b"\r\n".join(lines)


def upstream_head(
    head: RequestHead, base_path: bytes, forwarded: bytes, token_line: bytes | None
) -> bytes:
    """The request head to send to the pod, as edge.headers.upstream_request_headers builds it.

    `forwarded` is forwarded_lines(); `token_line` the complete pod-token header
    line, or None to keep the browser's own (the route has no token).
    """
    lines = [head.method.encode() + b" " + base_path + head.target + b" HTTP/1.1", *head.kept]
    if token_line is None:
        if head.own_token:
            lines.extend(head.own_token)
        lines.append(forwarded)
    else:
        lines.append(forwarded)
        lines.append(token_line)
    return end_head(lines, head)


def end_head(lines: list[bytes], head: RequestHead) -> bytes:
    """`lines` with the body's length (from the number parsed, never a browser's line)
    and the blank line: the head as it goes upstream."""
    if head.has_length:
        lines.append(b"Content-Length: %d" % head.content_length)
    elif head.method in _BODY_METHODS:
        lines.append(b"Content-Length: 0")
    lines.append(b"\r\n")
    return b"\r\n".join(lines)
