"""The strongest proof of compatibility: the same calls to the real CHP and to us, answers compared.

CHP listens on Unix sockets (no TCP port to pick); podgate's ops app on
127.0.0.1:0. Every answer must match in status, and in body too, except
where a documented difference applies (JavaScript's JSON error text, and
the moment a route was last active).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from edge.ops import build_ops_app
from metrics import EdgeStats, PodgateMetrics
from routes import RouteTable

CHP = shutil.which("configurable-http-proxy")
TOKEN = "compare-token"
AUTH = {"Authorization": f"token {TOKEN}"}
ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

pytestmark = pytest.mark.skipif(
    CHP is None,
    reason="configurable-http-proxy is not installed (npm i -g configurable-http-proxy)",
)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = tuple(AUTH.items())
    # False beside the API, where the body is each server's own 404 page.
    compare_body: bool = True


@dataclass
class Answer:
    status: int
    body: bytes


def post(path: str, data: Any, **kw: Any) -> Call:
    return Call("POST", path, json.dumps(data).encode(), **kw)


ALICE = {"target": "http://127.0.0.1:9001", "user": "alice", "server_name": "", "jupyterhub": True}

# The calls JupyterHub makes, and the mistakes a client can make.
SCRIPT = [
    Call("GET", "/api/routes", headers=()),
    Call("GET", "/api/routes", headers=(("Authorization", "token wrong"),)),
    Call("GET", "/api/routes", headers=(("Authorization", f"Bearer {TOKEN}"),)),
    Call("GET", "/api/routes"),
    post("/api/routes/user/alice", ALICE),
    post("/api/routes/user/alice", ALICE, headers=()),
    Call("POST", "/api/routes/user/bob", b"{not json", headers=()),
    Call("POST", "/api/routes/user/bob", b"{not json"),
    Call("POST", "/api/routes/user/bob", b""),
    post("/api/routes/user/bob", {}),
    post("/api/routes/user/bob", {"target": 5}),
    post("/api/routes/user/bob", None),
    post("/api/routes/user/bob", [1, 2]),
    Call("GET", "/api/routes/user/alice"),
    Call("GET", "/api/routes/user/alice/"),
    Call("GET", "/api/routes/user/alice", headers=(("Authorization", f"token   {TOKEN}"),)),
    Call("GET", "/api/routes/user/nobody"),
    post("/api/routes/", {"target": "http://127.0.0.1:8081", "hub": True}),
    post("/api/routes/user/x", {"target": "http://127.0.0.1:2", "a": 1}),
    post("/api/routes/user/x/", {"target": "http://127.0.0.1:3"}),
    post("/api/routes/user/a%2540b", {"target": "http://127.0.0.1:4"}),
    Call("GET", "/api/routes"),
    Call("GET", "/api/routes/"),
    Call("GET", "/api/routes?inactive_since=2000-01-01T00:00:00.000Z"),
    Call("GET", "/api/routes?inactiveSince=2100-01-01T00:00:00.000Z"),
    Call("GET", "/api/routes?inactive_since=2100-01-01"),
    Call("GET", "/api/routes?inactive_since="),
    Call("GET", "/api/routes?inactive_since=yesterday"),
    Call("GET", "/api/routes?inactive_since=yesterday", headers=()),
    Call("PUT", "/api/routes/user/alice"),
    Call("PATCH", "/api/routes"),
    Call("GET", "/api/routesx", compare_body=False),
    Call("DELETE", "/api/routes/user/alice", headers=()),
    Call("DELETE", "/api/routes/user/alice"),
    Call("DELETE", "/api/routes/user/alice"),
    Call("GET", "/api/routes/user/alice"),
    Call("DELETE", "/api/routes/"),
    Call("GET", "/api/routes"),
]

# Bodies whose text comes from JavaScript's JSON parser: the status must match, the text cannot.
JS_ERROR_TEXT = re.compile(rb"Body not valid JSON: ")


async def _wait_for_socket(path: Path, proc: asyncio.subprocess.Process) -> None:
    for _ in range(200):  # about 10 s
        if proc.returncode is not None:
            raise RuntimeError(f"configurable-http-proxy exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_unix_connection(str(path))
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError("configurable-http-proxy did not open its API socket")


@pytest.fixture
async def chp() -> AsyncIterator[aiohttp.ClientSession]:
    assert CHP is not None
    workdir = Path(tempfile.mkdtemp(prefix="chp-"))  # short: Unix socket paths are capped
    api_socket = workdir / "api.sock"
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": TOKEN}
    proc = await asyncio.create_subprocess_exec(
        CHP,
        "--socket",
        str(workdir / "proxy.sock"),
        "--api-socket",
        str(api_socket),
        "--log-level",
        "error",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    session: aiohttp.ClientSession | None = None
    try:
        await _wait_for_socket(api_socket, proc)
        session = aiohttp.ClientSession(
            "http://localhost", connector=aiohttp.UnixConnector(path=str(api_socket))
        )
        yield session
    finally:
        if session is not None:
            await session.close()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def ours(aiohttp_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    table = RouteTable()
    metrics = PodgateMetrics(EdgeStats(), table_size=lambda: len(table))
    app = build_ops_app(table=table, metrics=metrics, api_token=TOKEN, is_ready=lambda: True)
    return await aiohttp_client(app)


async def _call(send: Callable[..., Any], call: Call) -> Answer:
    async with send(call.method, call.path, data=call.body, headers=dict(call.headers)) as resp:
        return Answer(resp.status, await resp.read())


def _comparable(body: bytes) -> Any:
    """A JSON body with each last_activity checked for CHP's format and then blanked."""
    data = json.loads(body)
    routes = data.values() if data and all(isinstance(v, dict) for v in data.values()) else [data]
    for route in routes:
        if isinstance(route, dict) and "last_activity" in route:
            assert ISO_MS_Z.fullmatch(route["last_activity"]), route["last_activity"]
            route["last_activity"] = "<time>"
    return data


async def test_route_api_answers_like_configurable_http_proxy(
    chp: aiohttp.ClientSession, ours: TestClient
) -> None:
    differences = []
    listings = []
    for call in SCRIPT:
        theirs = await _call(chp.request, call)
        if call == Call("GET", "/api/routes") and theirs.status == 200:
            listings.append(set(json.loads(theirs.body)))
        mine = await _call(ours.request, call)
        label = f"{call.method} {call.path} {call.body!r} {dict(call.headers)}"
        both_js_errors = bool(JS_ERROR_TEXT.match(theirs.body) and JS_ERROR_TEXT.match(mine.body))
        if theirs.status != mine.status:
            differences.append(
                f"{label}: CHP {theirs.status} {theirs.body!r}, ours {mine.status} {mine.body!r}"
            )
        elif theirs.status == 200:
            if _comparable(theirs.body) != _comparable(mine.body):
                differences.append(f"{label}: CHP {theirs.body!r}, ours {mine.body!r}")
        elif call.compare_body and theirs.body != mine.body and not both_js_errors:
            differences.append(f"{label}: CHP body {theirs.body!r}, ours {mine.body!r}")
    assert not differences, "\n".join(differences)
    # The script really exercised a filled table, decoded the way both agree on.
    assert {"/user/alice", "/", "/user/x", "/user/a%40b"} in listings
