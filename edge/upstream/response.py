"""A pod's response head read strictly, and its body framing (both lanes read pods with it).

`parse_response` checks the status line and every header line, decides how the
body is delimited (Content-Length, chunked, until close, or none) and returns
the head the browser may see: the pod's own bytes when nothing needs removing
(the common case, found by one regex scan over the head), else a rebuilt head
without hop-by-hop headers and without a Set-Cookie of podgate's own cookies.
`ChunkedFraming` follows chunk framing to find where a chunked body ends while
its bytes are relayed unchanged.

Pure code on bytes: no I/O, never holds a body.
"""

from __future__ import annotations

import re
from enum import Enum

from edge.headers import FIELD_LINES, HOP_BY_HOP, sets_reserved_cookie

MAX_RESPONSE_HEAD = 65536
# The whole head, strictly: status line, then header lines of token names and clean values.
_HEAD = re.compile(
    rb"HTTP/1\.([01]) ([1-5][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*+)?\r\n"
    + FIELD_LINES.pattern
    + rb"\r\n"
)
# Header lines that need a look: framing, hop-by-hop, and Set-Cookie (name, raw value).
_NOTABLE = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection|keep-alive|proxy-authenticate"
    rb"|proxy-authorization|proxy-connection|te|trailer|upgrade|expect|set-cookie):([^\r]*)",
    re.IGNORECASE,
)
# The framing headers stay: the body is relayed with the framing they describe.
_DROP = frozenset(name.encode() for name in HOP_BY_HOP) - {b"transfer-encoding"}
_NO_BODY_STATUS = frozenset((204, 304))
_PLAIN_CONNECTION_TOKENS = frozenset((b"close", b"keep-alive", b""))


class Framing(Enum):
    NONE = 0
    LENGTH = 1
    CHUNKED = 2
    UNTIL_CLOSE = 3


class ResponseHead:
    """What the relay needs to know about one pod response head."""

    __slots__ = ("client_head", "framing", "keep_alive", "length", "status", "verbatim")

    def __init__(
        self, status: int, framing: Framing, length: int, keep_alive: bool, client_head: bytes
    ) -> None:
        self.status = status
        self.framing = framing
        self.length = length
        self.keep_alive = keep_alive  # the pod connection may be pooled after the body
        self.client_head = client_head  # the head for the browser, blank line included
        self.verbatim = False  # client_head is the pod's own bytes, unchanged


class Garbage(Exception):
    """The pod's bytes are not a response we can relay (a 502)."""


def parse_response(
    data: bytes, end: int, head_request: bool, reserved_cookies: frozenset[str], close_client: bool
) -> ResponseHead:
    """The head in data[:end + 4]; raises Garbage. `close_client`: say Connection: close."""
    match = _HEAD.fullmatch(data, 0, end + 4)
    if match is None:
        raise Garbage("bad status line or header line")
    status = int(match.group(2))
    if status == 101:
        raise Garbage("switching protocols on a request that asked for no upgrade")
    keep_alive = match.group(1) == b"1"
    head = data[: end + 4]
    lengths: list[bytes] = []
    chunked = False
    codings: list[bytes] = []
    te_lines: list[bytes] = []
    cut: list[bytes] = []  # whole lines (CRLF around) the browser must not see
    listed: set[bytes] = set()  # other names the Connection header makes hop-by-hop
    for name, raw in _NOTABLE.findall(head):
        lower = name.lower()
        value = raw.strip(b" \t")
        if lower == b"content-length":
            lengths.append(value)
        elif lower == b"transfer-encoding":
            codings.extend(t for t in (c.strip(b" \t").lower() for c in value.split(b",")) if t)
            te_lines.append(b"\r\n" + name + b":" + raw + b"\r\n")
        elif lower == b"set-cookie":
            if sets_reserved_cookie(value.decode("latin-1"), reserved_cookies):
                cut.append(b"\r\n" + name + b":" + raw + b"\r\n")  # a pod may not touch it
        else:
            cut.append(b"\r\n" + name + b":" + raw + b"\r\n")
            if lower == b"connection":
                tokens = {t.strip(b" \t").lower() for t in value.split(b",")}
                if b"close" in tokens:
                    keep_alive = False
                listed |= tokens - _PLAIN_CONNECTION_TOKENS
    if codings:
        # RFC 9112 6.3: chunked last means chunked; no chunked at all means until close
        # (the codings then mean nothing to the browser: the line goes).
        if b"chunked" in codings[:-1]:
            raise Garbage("chunked is not the final transfer coding")
        chunked = codings[-1] == b"chunked"
        if not chunked and not lengths:
            cut.extend(te_lines)
    framing, length = _framing(status, head_request, lengths, bool(codings), chunked)
    if framing is Framing.UNTIL_CLOSE:
        keep_alive = False
    close = status >= 200 and (close_client or framing is Framing.UNTIL_CLOSE)
    http10 = match.group(1) == b"0"
    if listed:
        listed.discard(b"content-length")  # it describes the relayed body
        if chunked or lengths or not codings:
            listed.discard(b"transfer-encoding")
        else:
            listed.add(b"transfer-encoding")
        head = _rewrite(head, head.find(b"\r\n"), listed, reserved_cookies, close)
    elif cut or close or http10:
        head = _splice(head, cut, http10, close)
    else:
        parsed = ResponseHead(status, framing, length, keep_alive, head)
        parsed.verbatim = True
        return parsed
    return ResponseHead(status, framing, length, keep_alive, head)


def _splice(head: bytes, cut: list[bytes], http10: bool, close: bool) -> bytes:
    """The head without the cut lines, as HTTP/1.1, with Connection: close if asked."""
    for line in cut:
        # A whole line, CRLF on both sides: it cannot match inside another line.
        head = head.replace(line, b"\r\n", 1)
    if http10:
        head = b"HTTP/1.1" + head[8:]
    if close:
        head = head[:-2] + b"Connection: close\r\n\r\n"
    return head


def _framing(
    status: int, head_request: bool, lengths: list[bytes], coded: bool, chunked: bool
) -> tuple[Framing, int]:
    if len(lengths) > 1 or (lengths and coded):
        raise Garbage("ambiguous body length")
    if lengths and (not lengths[0].isdigit() or len(lengths[0]) > 18):
        raise Garbage("bad Content-Length")
    if status < 200 or status in _NO_BODY_STATUS or head_request:
        return Framing.NONE, 0
    if chunked:
        return Framing.CHUNKED, 0
    if coded:
        return Framing.UNTIL_CLOSE, 0
    if lengths:
        length = int(lengths[0])
        return (Framing.LENGTH, length) if length else (Framing.NONE, 0)
    return Framing.UNTIL_CLOSE, 0


def _rewrite(
    head: bytes, line_end: int, drop: set[bytes], reserved_cookies: frozenset[str], close: bool
) -> bytes:
    """The head without hop-by-hop lines or a Set-Cookie of podgate's cookies, as HTTP/1.1."""
    lines = [b"HTTP/1.1" + head[8:line_end]]
    for line in head[line_end + 2 : -4].split(b"\r\n"):
        if not line:
            continue
        name, _, value = line.partition(b":")
        lower = name.lower()
        if lower in _DROP or lower in drop:
            continue
        if lower == b"set-cookie" and sets_reserved_cookie(
            value.decode("latin-1"), reserved_cookies
        ):
            continue  # a pod may not set or clear podgate's cookies
        lines.append(line)
    if close:
        lines.append(b"Connection: close")
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


class ChunkedFraming:
    """Follows chunked framing across packets; `feed` says where the body ends."""

    __slots__ = ("line", "payload", "remaining", "state")

    _SIZE, _DATA, _DATA_END, _TRAILER = range(4)

    def __init__(self) -> None:
        self.state = self._SIZE
        self.remaining = 0
        self.line = b""
        self.payload = 0  # body bytes without the framing, for the metrics

    def feed(self, data: bytes, pos: int = 0) -> int:
        """Index in `data` just past the body's end, or -1 if it goes on; raises Garbage."""
        size = len(data)
        while pos < size:
            state = self.state
            if state == self._DATA:
                take = min(self.remaining, size - pos)
                pos += take
                self.payload += take
                self.remaining -= take
                if not self.remaining:
                    self.state = self._DATA_END
                    self.remaining = 2
                continue
            if state == self._DATA_END:
                expected = b"\r\n"[2 - self.remaining]
                if data[pos] != expected:
                    raise Garbage("chunk not followed by CRLF")
                pos += 1
                self.remaining -= 1
                if not self.remaining:
                    self.state = self._SIZE
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self.line += data[pos:]
                if len(self.line) > 4096:
                    raise Garbage("chunk size line too long")
                return -1
            line = self.line + data[pos : newline + 1] if self.line else data[pos : newline + 1]
            self.line = b""
            pos = newline + 1
            if not line.endswith(b"\r\n"):
                raise Garbage("bare LF in chunk framing")
            if state == self._SIZE:
                digits = line[:-2].split(b";", 1)[0].strip(b" \t")
                if not digits or len(digits) > 16 or digits.strip(b"0123456789abcdefABCDEF"):
                    raise Garbage("bad chunk size")
                self.remaining = int(digits, 16)
                self.state = self._DATA if self.remaining else self._TRAILER
            elif line == b"\r\n":
                return pos
            elif FIELD_LINES.fullmatch(line) is None:
                raise Garbage("bad trailer line")
        return -1


class ChunkedDecoder(ChunkedFraming):
    """Chunk framing followed (and checked) as ChunkedFraming does, with the data taken out.

    For the aiohttp lane, whose web.StreamResponse frames the body again itself.
    """

    __slots__ = ()

    def decode(self, data: bytes) -> tuple[list[bytes], int]:
        """The data in `data`, and the index just past the body's end (-1: it goes on).

        Raises Garbage as feed does.
        """
        pieces: list[bytes] = []
        pos = 0
        size = len(data)
        while pos < size:
            if self.state == self._DATA:
                take = min(self.remaining, size - pos)
                pieces.append(data[pos : pos + take])
                pos += take
                self.payload += take
                self.remaining -= take
                if not self.remaining:
                    self.state = self._DATA_END
                    self.remaining = 2
                continue
            # Framing bytes only (a size or trailer line, the CRLF after data): feed checks them.
            if self.state == self._DATA_END:
                stop = min(pos + self.remaining, size)
            else:
                newline = data.find(b"\n", pos)
                stop = size if newline < 0 else newline + 1
            end = self.feed(data[pos:stop])
            if end >= 0:
                return pieces, pos + end
            pos = stop
        return pieces, -1
