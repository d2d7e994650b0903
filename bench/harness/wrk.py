"""Driving wrk: one Lua script per request shape, one JSON summary per run.

The Lua script sets the method, body and headers (the session cookie for
the cookie peer) and prints wrk's summary as JSON from its done() hook, so
nothing here parses wrk's human-readable text.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.harness.procs import pinned

WRK = shutil.which("wrk") or "/usr/bin/wrk"
_MARK = "WRKJSON "

_DONE_HOOK = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, "connect": %.0f, '
    .. '"read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f, '
    .. '"p50_us": %.0f, "p99_us": %.0f, "mean_us": %.0f}\\n',
    "MARK", summary.requests, summary.duration, summary.bytes, e.connect, e.read,
    e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99),
    latency.mean))
end
"""


@dataclass(frozen=True)
class RequestShape:
    """What every wrk request of a run looks like."""

    method: str = "GET"
    body_bytes: int = 0
    cookie: str = ""  # a full Cookie header value, or "" for none
    close: bool = False  # Connection: close: one request per connection (TLS: per handshake)

    def lua(self) -> str:
        lines = [f'wrk.method = "{self.method}"']
        if self.close:
            lines.append('wrk.headers["Connection"] = "close"')
        if self.body_bytes:
            lines.append(f'wrk.body = string.rep("x", {self.body_bytes})')
            lines.append('wrk.headers["Content-Type"] = "application/octet-stream"')
        if self.cookie:
            lines.append(f'wrk.headers["Cookie"] = [==[{self.cookie}]==]')
        return "\n".join(lines) + _DONE_HOOK.replace("MARK", _MARK)


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    bytes_read: int
    socket_errors: int  # connect + read + write
    timeouts: int
    bad_status: int  # responses with status >= 400
    p50_ms: float
    p99_ms: float
    mean_ms: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.timeouts + self.bad_status


class WrkFailed(RuntimeError):
    pass


def wrk_installed() -> bool:
    return shutil.which(WRK) is not None


def run_wrk(
    url: str,
    shape: RequestShape,
    *,
    connections: int,
    seconds: float,
    timeout_s: float,
    cpus: str | None,
    workdir: Path,
) -> WrkResult:
    """One wrk run with a single thread (the load generator gets one core)."""
    script = workdir / f"wrk-{abs(hash(shape))}.lua"
    script.write_text(shape.lua())
    cmd = [
        WRK,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(script),
        url,
    ]
    try:
        done = subprocess.run(
            pinned(cmd, cpus),
            capture_output=True,
            text=True,
            timeout=seconds + timeout_s + 30,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise WrkFailed(f"wrk did not finish: {url}") from e
    for line in done.stdout.splitlines():
        if line.startswith(_MARK):
            raw = json.loads(line[len(_MARK) :])
            return WrkResult(
                requests=int(raw["requests"]),
                seconds=raw["duration_us"] / 1e6,
                bytes_read=int(raw["bytes"]),
                socket_errors=int(raw["connect"] + raw["read"] + raw["write"]),
                timeouts=int(raw["timeout"]),
                bad_status=int(raw["status"]),
                p50_ms=raw["p50_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000,
                mean_ms=raw["mean_us"] / 1000,
            )
    raise WrkFailed(f"wrk gave no summary (rc={done.returncode}): {done.stderr[-500:]}")
