"""mitmproxy addon for the reliability suite: faults between podgate and its Kubernetes API.

Loaded by mitmdump in reverse-proxy mode in front of a plain-HTTP kubesim
(``mitmdump --mode reverse:http://127.0.0.1:PORT -s kube_api_addon.py``), in
mitmproxy's own venv: it imports only the standard library, mitmproxy and
the suite's faults_addon.py. The test switches faults at run time with
``PUT /kube-api-faults`` (a JSON object, answered here, never forwarded) and
reads what happened with ``GET /kube-api-faults``:

    latency_ms          hold every API call this long (watches: before their head)
    create_latency_ms   hold each create (POST) this long, then forward it
    list_errors         answer the next N lists (GET of a collection) 500
    throttle_creates    answer the next N creates 429 with Retry-After: retry_after
    drop_watches        cut every open watch stream now (both sockets reset)
    truncate_watch      cut the next watch event in half, mid JSON line, then reset
    expire_watches      answer the next N watches from a resourceVersion with a 410 ERROR event
    down                reset every call, and cut every open watch, until false
    reset               all of the above off

Watch responses are streamed (``flow.response.stream``): without it mitmproxy
would hold a watch's body until the stream ends, and no event would arrive.
This addon must never touch any address but the API server it fronts.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable

from faults_addon import _abort_connections
from mitmproxy import http

CONTROL_PATH = "/kube-api-faults"
TRUNCATED_RESET_DELAY = 0.3  # s: lets the half line reach podgate before the reset


class Faults:
    """The faults switched on; a plain class: mitmproxy loads scripts outside sys.modules,
    where dataclasses cannot resolve string annotations."""

    def __init__(self, seen: Counter[str] | None = None) -> None:
        self.latency_ms = 0
        self.create_latency_ms = 0
        self.list_errors = 0
        self.throttle_creates = 0
        self.retry_after = 1
        self.truncate_watch = False
        self.expire_watches = 0
        self.down = False
        self.seen: Counter[str] = seen if seen is not None else Counter()  # for the figures


def _is_watch(request: http.Request) -> bool:
    return request.query.get("watch", "") in ("true", "1")


def _is_list(request: http.Request) -> bool:
    """A GET of a collection: /api/v1/[namespaces/NS/]RESOURCE or /apis/G/V/[namespaces/NS/]R."""
    if request.method != "GET" or _is_watch(request):
        return False
    parts = request.path.split("?", 1)[0].strip("/").split("/")
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]
    return len(rest) == 1


def _status(code: int, reason: str, message: str) -> bytes:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return json.dumps(body).encode()


class KubeApiFaults:
    def __init__(self) -> None:
        self.faults = Faults()
        self.watches: set[http.HTTPFlow] = set()

    async def request(self, flow: http.HTTPFlow) -> None:
        request = flow.request
        if request.path.startswith(CONTROL_PATH):
            self._control(flow)
            return
        faults = self.faults
        faults.seen["calls"] += 1
        if faults.down:
            faults.seen["down_reset"] += 1
            flow.kill()
            return
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if request.method == "POST":
            if faults.create_latency_ms:
                faults.seen["create_delayed"] += 1
                await asyncio.sleep(faults.create_latency_ms / 1000)
            if faults.throttle_creates > 0:
                faults.throttle_creates -= 1
                faults.seen["create_429"] += 1
                flow.response = http.Response.make(
                    429,
                    _status(429, "TooManyRequests", "too many requests, please try again later"),
                    {"Content-Type": "application/json", "Retry-After": str(faults.retry_after)},
                )
                return
        if (
            faults.expire_watches > 0
            and _is_watch(request)
            and request.query.get("resourceVersion")
        ):
            # As an API server whose history moved on: the watch opens, says 410, ends.
            faults.expire_watches -= 1
            faults.seen["watch_410"] += 1
            gone = _status(410, "Expired", "too old resource version")
            event = b'{"type":"ERROR","object":' + gone + b"}\n"
            flow.response = http.Response.make(200, event, {"Content-Type": "application/json"})
            return
        if faults.list_errors > 0 and _is_list(request):
            faults.list_errors -= 1
            faults.seen["list_500"] += 1
            flow.response = http.Response.make(
                500,
                _status(500, "InternalError", "etcdserver: request timed out"),
                {"Content-Type": "application/json"},
            )

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is None or not _is_watch(flow.request):
            return
        self.watches.add(flow)
        flow.response.stream = self._watch_relay(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self.watches.discard(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self.watches.discard(flow)

    def _watch_relay(self, flow: http.HTTPFlow):  # type: ignore[no-untyped-def]
        cut = {"done": False}

        def relay(chunk: bytes) -> bytes | Iterable[bytes]:
            if cut["done"]:
                return []  # the reset is on its way: nothing after the half line
            if chunk and self.faults.truncate_watch:
                self.faults.truncate_watch = False
                self.faults.seen["watch_truncated"] += 1
                cut["done"] = True
                loop = asyncio.get_running_loop()
                loop.call_later(TRUNCATED_RESET_DELAY, self._cut, flow)
                return chunk[: max(1, len(chunk) // 2)]
            return chunk

        return relay

    def _cut(self, flow: http.HTTPFlow) -> None:
        self.watches.discard(flow)
        _abort_connections(flow)

    def _cut_watches(self) -> None:
        for flow in list(self.watches):
            self.faults.seen["watch_dropped"] += 1
            self._cut(flow)

    def _control(self, flow: http.HTTPFlow) -> None:
        if flow.request.method == "PUT":
            settings = json.loads(flow.request.get_text() or "{}")
            if settings.pop("reset", False):
                self.faults = Faults(seen=self.faults.seen)
            if settings.pop("drop_watches", False):
                self._cut_watches()
            for name, value in settings.items():
                if name == "seen" or not hasattr(self.faults, name):
                    flow.response = http.Response.make(400, f"unknown fault {name!r}")
                    return
                setattr(self.faults, name, value)
            if self.faults.down:
                self._cut_watches()  # the API went away: its open streams with it
        state = {
            "watches_open": len(self.watches),
            "seen": dict(self.faults.seen),
            "down": self.faults.down,
        }
        flow.response = http.Response.make(
            200, json.dumps(state), {"Content-Type": "application/json"}
        )


addons = [KubeApiFaults()]
