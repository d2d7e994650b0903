"""Shared pieces of the reliability suite: recording pods, a real podgate, a raw HTTP reader.

Everything here runs for real on 127.0.0.1 with port 0: pods are aiohttp
servers that record every request they receive (so a test can count what got
through the edge), podgate is assembled from a real config file exactly as
`podgate run` assembles it, and hostile bytes go over plain sockets. Nothing
here replaces or patches any part of podgate, and nothing ever touches an
address outside 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import select
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from tls_kit import issue, make_ca

from podgate.assembly import Podgate
from podgate.config import load_config

COOKIE_NAME = "podgate-session"
# Secrets of the test podgate: the first signs, the second is still accepted.
CURRENT_SECRET = "reliability-current-secret-0001"
PREVIOUS_SECRET = "reliability-previous-secret-002"
# Keys podgate does not hold: one retired from the list, one never known.
RETIRED_SECRET = "reliability-retired-secret-0003"
FOREIGN_SECRET = "some-other-deployment-secret-04"


def budget(name: str, ci_default: int) -> int:
    """Example counts for property and fuzz tests: small in CI, larger with an env var.

    PODGATE_RELIABILITY_SCALE=N multiplies every count (bench runs use 20-100).
    """
    scale = int(os.environ.get("PODGATE_RELIABILITY_SCALE", "1") or "1")
    return max(1, ci_default * max(1, scale))


@dataclass
class PodLog:
    """What one pod saw: each request's method, raw path, headers and body size."""

    name: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    websockets: int = 0

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]


@dataclass
class RecordingPod:
    name: str
    url: str
    port: int
    log: PodLog
    server: TestServer


def recording_pod_app(log: PodLog) -> web.Application:
    """A pod that records and echoes: JSON of what it got, X-Pod names it.

    ?sleep=S waits first; ?size=N answers N bytes of "x"; ?set_cookie=V adds
    the raw header "Set-Cookie: V" (repeatable); a WebSocket
    upgrade is echoed message by message ("close:<code>" closes with that code),
    or refused with a 403 when the query has ?refuse=1.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if "refuse" not in request.query:
                return await _websocket(request, log)
            log.requests.append({"method": "UPGRADE-REFUSED", "path": request.raw_path})
            return web.Response(status=403, text="no websockets here", headers={"X-Pod": log.name})
        body = await request.read()
        record = {
            "method": request.method,
            "path": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_size": len(body),
            "body": body[:200].decode("utf-8", "replace"),
        }
        log.requests.append(record)
        if "sleep" in request.query:
            await asyncio.sleep(float(request.query["sleep"]))
        if "size" in request.query:
            return web.Response(body=b"x" * int(request.query["size"]), headers={"X-Pod": log.name})
        response = web.Response(
            text=json.dumps(record), content_type="application/json", headers={"X-Pod": log.name}
        )
        for value in request.query.getall("set_cookie", ()):
            response.headers.add("Set-Cookie", value)
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def _websocket(request: web.Request, log: PodLog) -> web.StreamResponse:
    ws = web.WebSocketResponse(max_msg_size=1 << 20)
    await ws.prepare(request)
    log.websockets += 1
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            if msg.data.startswith("close:"):
                await ws.close(code=int(msg.data[6:]), message=b"pod says bye")
            else:
                await ws.send_str(f"{log.name}:{msg.data}")
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def start_pod(name: str) -> RecordingPod:
    log = PodLog(name)
    server = TestServer(recording_pod_app(log), host="127.0.0.1", port=0)
    await server.start_server()
    port = server.port
    assert port is not None
    return RecordingPod(name, f"http://127.0.0.1:{port}", port, log, server)


def podgate_config(
    tmp_path: Path,
    *,
    control: bool,
    routes: list[dict[str, Any]],
    upstream_timeout: float = 5.0,
    admin_access: bool = False,
    admins: tuple[str, ...] = (),
    max_age_seconds: float = 3600.0,
    tls: dict[str, Any] | None = None,
) -> Path:
    """Write a podgate YAML config listening on 127.0.0.1:0; returns its path."""
    data = {
        "listen": "127.0.0.1:0",
        "ops_listen": "127.0.0.1:0",
        "log_level": "warning",
        "control": {"enabled": control},
        "auth": {"kind": "dummy", "admins": list(admins)},
        "session": {
            "cookie_name": COOKIE_NAME,
            "cookie_secrets": [CURRENT_SECRET, PREVIOUS_SECRET],
            "max_age_seconds": max_age_seconds,
        },
        "edge": {
            "admin_access": admin_access,
            "upstream_connect_timeout": 2.0,
            "upstream_timeout": upstream_timeout,
        },
        "routes": routes,
    }
    if tls is not None:
        data["tls"] = tls
    path = tmp_path / f"podgate-{'control' if control else 'proxy'}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


async def start_podgate(config_file: Path) -> Podgate:
    """podgate assembled from a config file as `podgate run --config` does (no env secrets)."""
    gate = Podgate(load_config(config_file, environ={}))
    await gate.start()
    return gate


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@dataclass
class Gate:
    """A running podgate and the pods behind it."""

    mode: str  # "proxy" or "control"
    podgate: Podgate
    port: int
    url: str
    open_pod: RecordingPod
    alice: RecordingPod
    bob: RecordingPod
    client_tls: ssl.SSLContext | None = None  # set when the public port speaks HTTPS

    async def raw(self, data: bytes | list[bytes], **kwargs: Any) -> RawOutcome:
        """raw_send to this podgate's public port, over TLS when it speaks it."""
        return await raw_send(self.port, data, tls=self.client_tls, **kwargs)

    def cookie(self, user: str) -> str:
        return f"podgate-session={self.podgate.sessions.issue(user)}"

    def pod_requests(self) -> int:
        return sum(len(p.log.requests) for p in (self.open_pod, self.alice, self.bob))


# ---------------------------------------------------------------- raw HTTP


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class RawOutcome:
    """What came back on one raw connection before it closed or went quiet."""

    responses: list[RawResponse]
    closed: bool  # the server closed (or reset) the connection
    leftover: bytes  # bytes that did not parse as a whole response

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses]

    @property
    def hung(self) -> bool:
        """No answer at all and the connection still open: what a hostile input must never do."""
        return not self.responses and not self.closed


def parse_responses(data: bytes, closed: bool = False) -> tuple[list[RawResponse], bytes]:
    """Split a byte stream into whole HTTP/1.1 responses.

    Framed by Content-Length or chunks, or, once the server has closed, by the close.
    """
    out: list[RawResponse] = []
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return out, data
        head = data[:end].decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            return out, data
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        rest = data[end + 4 :]
        status = int(parts[1])
        if status in (101, 204, 304) or 100 <= status < 200:
            body, data = b"", rest
        elif "chunked" in headers.get("transfer-encoding", ""):
            parsed = _dechunk(rest)
            if parsed is None:
                return out, data
            body, data = parsed
        elif "content-length" in headers:
            size = int(headers["content-length"])
            if len(rest) < size:
                return out, data
            body, data = rest[:size], rest[size:]
        elif closed:
            body, data = rest, b""  # the body ran to the close
        else:
            return out, data  # body runs to the close: not a whole response yet
        out.append(RawResponse(status, headers, body))


def _dechunk(data: bytes) -> tuple[bytes, bytes] | None:
    body = bytearray()
    while True:
        line_end = data.find(b"\r\n")
        if line_end < 0:
            return None
        size = int(data[:line_end].split(b";")[0], 16)
        data = data[line_end + 2 :]
        if size == 0:
            trailer_end = data.find(b"\r\n")
            return (bytes(body), data[trailer_end + 2 :]) if trailer_end >= 0 else None
        if len(data) < size + 2:
            return None
        body += data[:size]
        data = data[size + 2 :]


async def raw_send(
    port: int,
    data: bytes | list[bytes],
    *,
    expect: int = 1,
    seconds: float = 3.0,
    pause: float = 0.05,
    tls: ssl.SSLContext | None = None,
) -> RawOutcome:
    """Send bytes (a list is sent write by write, `pause` apart) and collect the answers.

    Reads until the server closes, until `expect` whole responses arrived and
    the line stayed quiet for a moment, or until `seconds` pass.
    """
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
    )
    received = bytearray()
    closed = False
    try:
        for n, piece in enumerate([data] if isinstance(data, bytes) else data):
            if n:
                await asyncio.sleep(pause)
            writer.write(piece)
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            complete = len(parse_responses(bytes(received))[0]) >= expect
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 0.2 if complete else left)
            except TimeoutError:
                if complete:
                    break
                continue
            except (ConnectionError, ssl.SSLError):  # TLS: a close without close_notify
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    responses, leftover = parse_responses(bytes(received), closed)
    return RawOutcome(responses, closed, leftover)


# ---------------------------------------------------------------- processes

HERE = Path(__file__).resolve().parent
POD_SCRIPT = HERE / "pod_process.py"
FAULTS_ADDON = HERE / "faults_addon.py"


@dataclass
class ProcessPod:
    """A pod running as its own process (tests/reliability/pod_process.py)."""

    name: str
    url: str
    process: subprocess.Popen[str]


def start_process_pod(name: str) -> ProcessPod:
    process = subprocess.Popen(
        [sys.executable, str(POD_SCRIPT), name],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 15)
    line = process.stdout.readline().strip() if ready else ""
    if not line.isdigit():
        stop_process(process)
        raise RuntimeError(f"pod process {name} did not start (got {line!r})")
    return ProcessPod(name, f"http://127.0.0.1:{line}", process)


def stop_process(process: subprocess.Popen[str]) -> None:
    """Terminate, then kill if it lingers; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if process.stdout is not None:
        process.stdout.close()


@dataclass
class Middlebox:
    """mitmdump in reverse-proxy mode in front of one pod, with faults_addon.py loaded."""

    url: str
    process: subprocess.Popen[str]
    log_path: Path


REPO_ROOT = Path(__file__).resolve().parents[2]
# Where tests/run installs mitmproxy: its own venv, because it pins its own dependencies.
MITM_VENV_DUMP = REPO_ROOT / ".cache" / "mitmproxy-venv" / "bin" / "mitmdump"


def find_mitmdump() -> str | None:
    """mitmdump on PATH, else in the repo's .cache/mitmproxy-venv; None when neither exists."""
    found = shutil.which("mitmdump")
    if found:
        return found
    if MITM_VENV_DUMP.is_file() and os.access(MITM_VENV_DUMP, os.X_OK):
        return str(MITM_VENV_DUMP)
    return None


MITM_MISSING = (
    "mitmdump not found on PATH or in .cache/mitmproxy-venv; create it with: "
    "python3 -m venv .cache/mitmproxy-venv && .cache/mitmproxy-venv/bin/pip install mitmproxy"
)


def start_mitmdump(
    mitmdump: str, target: str, workdir: Path, addon: Path = FAULTS_ADDON
) -> Middlebox:
    """mitmdump in reverse mode before `target`, with `addon` loaded."""
    log_path = workdir / "mitmdump.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                mitmdump,
                "--mode",
                f"reverse:{target}",
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                "0",
                "-s",
                str(addon),
                "--set",
                f"confdir={workdir / 'mitmproxy-conf'}",
                "--set",
                "flow_detail=0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"listening at 127\.0\.0\.1:(\d+)", log_path.read_text())
        if found:
            return Middlebox(f"http://127.0.0.1:{found.group(1)}", process, log_path)
        time.sleep(0.05)
    stop_process(process)
    raise RuntimeError(f"mitmdump did not start: {log_path.read_text()[-2000:]}")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


RawPodScript = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def gate_before_raw_pod(tmp_path: Path, script: RawPodScript) -> AsyncIterator[Podgate]:
    """Proxy-only podgate routing everything to a raw pod that runs `script` per connection.

    The pod's connection is closed after the script; every script task is
    cancelled and awaited at the end.
    """
    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(serve(reader, writer))
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    server = await asyncio.start_server(track, "127.0.0.1", 0)
    target = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    gate = await start_podgate(
        podgate_config(tmp_path, control=False, routes=[{"path": "/", "target": target}])
    )
    try:
        yield gate
    finally:
        await gate.stop()
        server.close()
        for task in list(handlers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.wait_closed()


def user_routes(open_url: str, alice_url: str, bob_url: str) -> list[dict[str, str]]:
    return [
        {"path": "/open", "target": open_url},
        {"path": "/user/alice", "target": alice_url, "user": "alice"},
        {"path": "/user/bob", "target": bob_url, "user": "bob"},
    ]


@contextlib.asynccontextmanager
async def open_gate(
    mode: str, tmp_path: Path, pods: tuple[RecordingPod, RecordingPod, RecordingPod]
) -> AsyncIterator[Gate]:
    """podgate in `mode` ("proxy" or "control", "+tls" for HTTPS on the public port)."""
    open_pod, alice, bob = pods
    tls = None
    client_tls = None
    if mode.endswith("+tls"):
        ca = make_ca(tmp_path / "ca")
        leaf = issue(ca, tmp_path / "certs")
        tls = {"cert_file": str(leaf.cert_file), "key_file": str(leaf.key_file)}
        client_tls = ca.client_context()
    config = podgate_config(
        tmp_path,
        control=mode.startswith("control"),
        routes=user_routes(open_pod.url, alice.url, bob.url),
        upstream_timeout=2.0,
        tls=tls,
    )
    podgate = await start_podgate(config)
    try:
        yield Gate(
            mode.removesuffix("+tls"),
            podgate,
            port_of(podgate.public_url),
            podgate.public_url,
            open_pod,
            alice,
            bob,
            client_tls,
        )
    finally:
        await podgate.stop()
