"""Both lanes against an independent parser: the same single request reaches the pod, or none.

Every input of the hostile corpus (test_hostile_http, and the edge suite's
malformed requests) is sent on a fresh connection to the fast lane
(edge.server.serve_public) and to the aiohttp lane (the same public app
served by aiohttp alone, as after a hand-over), each in front of its own pod
that parses with h11 and records every request it reads. h11 also reads the
browser's bytes directly: the requests it sees there are the truth. Each lane
may forward a prefix of those requests (none, for a refused input), each
request exactly as h11 read it (method, target, body, end-to-end headers),
never anything else; both lanes must forward the same; and a browser coming
next on another connection gets its own answer. A pod connection's bytes are
only counted once the edge has closed it, so a late or smuggled request
cannot slip past the count.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import h11
import pytest
from aiohttp import web
from reliability_kit import RawOutcome, raw_send
from test_hostile_http import H2C, MAY_SERVE, MUST_REFUSE

from edge.app import build_public_app
from edge.server import serve_public
from edge.settings import EdgeSettings
from metrics.edge_stats import EdgeStats
from routes import RouteSource, RouteTable
from tests.edge.test_http_malformed import MALFORMED

# name -> (bytes, whether every lane must refuse it)
CORPUS: dict[str, tuple[bytes, bool]] = {
    **{f"hostile: {n}": (data, True) for n, data in MUST_REFUSE.items()},
    **{f"lawful: {n}": (data, False) for n, (data, _) in MAY_SERVE.items()},
    **{f"malformed: {n}": (data, False) for n, data in MALFORMED.items()},
    "lawful: an h2c upgrade is served as plain HTTP": (H2C, False),
    "lawful: Connection names an end-to-end header, which goes": (
        b"POST /open HTTP/1.1\r\nHost: podgate.test\r\nConnection: keep-alive, X-Hop\r\n"
        b"X-Hop: 1\r\nX-Kept: 2\r\nContent-Length: 5\r\n\r\nhello",
        False,
    ),
    "lawful: Connection names Authorization, which goes": (
        b"GET /open HTTP/1.1\r\nHost: podgate.test\r\nConnection: Authorization\r\n"
        b"Authorization: Bearer t\r\n\r\n",
        False,
    ),
}
# Plain requests both lanes serve whole: the comparison is never vacuous.
MUST_SERVE = frozenset(
    (
        "lawful: three pipelined requests in one write",
        "lawful: Connection names an end-to-end header, which goes",
        "lawful: Connection names Authorization, which goes",
    )
)
VICTIM = b"/open/victim"
# Rewritten by any proxy by design (hop-by-hop, framing re-expressed, X-Forwarded-*, id).
REWRITTEN = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"expect",
        b"content-length",
        b"host",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-request-id",
    )
)


@dataclass
class Seen:
    """One whole request as h11 read it."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""

    def host(self) -> bytes | None:
        return next((v for n, v in self.headers if n == b"host"), None)

    def end_to_end(self) -> list[tuple[bytes, bytes]]:
        listed = {
            t.strip().lower() for n, v in self.headers if n == b"connection" for t in v.split(b",")
        }
        return sorted((n, v) for n, v in self.headers if n not in REWRITTEN and n not in listed)


def read_like_h11(data: bytes) -> list[Seen]:
    """The whole requests h11 reads in `data`, up to the first it cannot read."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    seen: list[Seen] = []
    current: Seen | None = None
    for _ in range(1000):  # bounded: requests per input
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            return seen
        if isinstance(event, h11.Request):
            current = Seen(event.method, event.target, list(event.headers))
        elif isinstance(event, h11.Data) and current is not None:
            current.body += event.data
        elif isinstance(event, h11.EndOfMessage) and current is not None:
            seen.append(current)
            # Not a 2xx: a CONNECT or an Upgrade is refused, so the next request is read.
            conn.send(h11.Response(status_code=404, headers=[("Content-Length", "0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is h11.MUST_CLOSE:
                return seen
            conn.start_next_cycle()
        else:
            return seen  # NEED_DATA: the rest never completes
    return seen


@dataclass
class H11Pod:
    """A pod that reads with h11, records each whole request, answers 200 with its target."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # bytes h11 could not read as HTTP
    open: int = 0  # connections not yet closed
    quiet: asyncio.Event = field(default_factory=asyncio.Event)  # set while open == 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.quiet.clear()
        conn = h11.Connection(h11.SERVER)
        current: Seen | None = None
        at_eof = False
        try:
            for _ in range(10_000):  # bounded: events per connection
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as e:
                    if not at_eof:  # cut off mid-request is not a request that arrived
                        self.errors.append(repr(e))
                    return
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    at_eof = not data
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    current = Seen(event.method, event.target, list(event.headers))
                elif isinstance(event, h11.Data) and current is not None:
                    current.body += event.data
                elif isinstance(event, h11.EndOfMessage) and current is not None:
                    self.seen.append(current)
                    writer.write(answer(conn, current))
                    if conn.our_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
                else:
                    return  # ConnectionClosed
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            if not self.open:
                self.quiet.set()
            writer.close()


def answer(conn: h11.Connection, request: Seen) -> bytes:
    body = b"" if request.method == b"HEAD" else request.target
    head = h11.Response(status_code=200, headers=[("Content-Length", str(len(request.target)))])
    return conn.send(head) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())


@contextlib.asynccontextmanager
async def running_pod() -> AsyncIterator[H11Pod]:
    pod = H11Pod()
    tasks: set[asyncio.Task[None]] = set()

    def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(pod.serve(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(track, "127.0.0.1", 0)
    pod.port = server.sockets[0].getsockname()[1]
    try:
        yield pod
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def public_app(pod: H11Pod) -> web.Application:
    table = RouteTable()
    table.add("/", f"http://127.0.0.1:{pod.port}", source=RouteSource.API)
    return build_public_app(
        table=table,
        settings=EdgeSettings(control_enabled=False),
        stats=EdgeStats(),
        sessions=None,
    )


Lane = Callable[[web.Application], contextlib.AbstractAsyncContextManager[int]]


@contextlib.asynccontextmanager
async def fast_lane(app: web.Application) -> AsyncIterator[int]:
    server = await serve_public(app, "127.0.0.1", 0)
    try:
        yield server.port
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def aiohttp_lane(app: web.Application) -> AsyncIterator[int]:
    """The app served by aiohttp alone: what a handed-over connection gets."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@dataclass
class Run:
    """What one input did on one lane: the browser's outcome, the pod's record, the next user's."""

    outcome: RawOutcome
    forwarded: list[Seen]
    victim: RawOutcome
    pod_errors: list[str]


async def run(lane: Lane, data: bytes) -> Run:
    async with running_pod() as pod:
        async with lane(public_app(pod)) as port:
            # Bounded generously for a busy machine; a refusal or an answer ends it early.
            outcome = await raw_send(
                port, data, expect=max(1, len(read_like_h11(data))), seconds=10
            )
            victim = await raw_send(
                port,
                b"GET " + VICTIM + b" HTTP/1.1\r\nHost: podgate.test\r\nConnection: close\r\n\r\n",
            )
        # The edge has closed every pod connection: once the pod has read them all
        # to their end, every byte the edge ever sent it is counted.
        async with asyncio.timeout(10):
            await pod.quiet.wait()
        victims = [s for s in pod.seen if s.target == VICTIM]
        assert len(victims) == 1, pod.seen
        forwarded = [s for s in pod.seen if s.target != VICTIM]
        return Run(outcome, forwarded, victim, pod.errors)


def key(seen: Seen, truth: Seen) -> tuple[object, ...]:
    """What must match the browser's request; Host only when the browser sent one."""
    host = seen.host() if truth.host() is not None else None
    return (seen.method, seen.target, seen.body, seen.end_to_end(), host)


def check_lane(name: str, lane: str, result: Run, truth: list[Seen], must_refuse: bool) -> None:
    where = f"{name} via the {lane} lane"
    assert not result.pod_errors, (where, result.pod_errors)
    assert [(r.status, r.body) for r in result.victim.responses] == [(200, VICTIM)], where
    forwarded = result.forwarded
    if must_refuse:
        assert forwarded == [], (where, forwarded)
    if name in MUST_SERVE:
        assert len(forwarded) == len(truth), (where, forwarded, truth)
    assert len(forwarded) <= len(truth), (where, forwarded, truth)
    for seen, real in zip(forwarded, truth, strict=False):
        assert key(seen, real) == key(real, real), (where, seen, real)


@pytest.mark.parametrize("name", list(CORPUS))
async def test_each_lane_forwards_what_h11_reads_or_nothing(name: str) -> None:
    data, must_refuse = CORPUS[name]
    truth = read_like_h11(data)
    fast, slow = await asyncio.gather(run(fast_lane, data), run(aiohttp_lane, data))
    check_lane(name, "fast", fast, truth, must_refuse)
    check_lane(name, "aiohttp", slow, truth, must_refuse)
    as_forwarded = [
        [key(s, r) for s, r in zip(x.forwarded, truth, strict=False)] for x in (fast, slow)
    ]
    assert as_forwarded[0] == as_forwarded[1], (name, fast.forwarded, slow.forwarded)
