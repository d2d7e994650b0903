"""Readiness checks against a pod's own address: httpGet, tcpSocket, exec.

One check per call, returning whether it passed and, if not, the message a
real kubelet puts in its Unhealthy event. Timing (initial delay, period,
thresholds) is read here but applied by the pod worker. Never changes pod
status itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from kubesim.kubelet.users import PodUser

# What a real kubelet of the pinned release (tests/realkube/go.mod) sends as
# User-Agent; servers that log or filter probes see the same string.
PROBE_USER_AGENT = "kube-probe/1.37"

Obj = dict[str, Any]


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def of(cls, probe: Obj) -> ProbeTiming:
        return cls(
            initial_delay=float(probe.get("initialDelaySeconds") or 0),
            period=float(probe.get("periodSeconds") or 10),
            timeout=float(probe.get("timeoutSeconds") or 1),
            success_threshold=int(probe.get("successThreshold") or 1),
            failure_threshold=int(probe.get("failureThreshold") or 3),
        )


def _port(value: int | str, container: Obj) -> int:
    """A numeric port, or a named one from the container's ports."""
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    for port in container.get("ports") or []:
        if port.get("name") == value:
            return int(port["containerPort"])
    raise ValueError(f"port {value!r} not found in the container's ports")


async def check_readiness(
    probe: Obj,
    container: Obj,
    pod_ip: str,
    env: Mapping[str, str],
    session: aiohttp.ClientSession,
    user: PodUser | None = None,
    cwd: Path | None = None,
) -> tuple[bool, str]:
    """Run the probe once: (passed, failure message); exec runs as the pod's user, in its dir."""
    timeout = ProbeTiming.of(probe).timeout
    try:
        if "httpGet" in probe:
            return await _http(probe["httpGet"], container, pod_ip, timeout, session)
        if "tcpSocket" in probe:
            return await _tcp(probe["tcpSocket"], container, pod_ip, timeout)
        if "exec" in probe:
            return await _exec(probe["exec"].get("command") or [], env, timeout, user, cwd)
    except ValueError as e:
        return False, str(e)
    return True, ""


async def _http(
    get: Obj, container: Obj, pod_ip: str, seconds: float, session: aiohttp.ClientSession
) -> tuple[bool, str]:
    host = get.get("host") or pod_ip
    port = _port(get.get("port", 80), container)
    path = get.get("path") or "/"
    url = f"{str(get.get('scheme') or 'HTTP').lower()}://{host}:{port}{path}"
    headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
    headers.setdefault("User-Agent", PROBE_USER_AGENT)
    try:
        async with session.get(
            url,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=seconds),
            ssl=False,
        ) as response:
            if 200 <= response.status < 400:
                return True, ""
            return False, f"HTTP probe failed with statuscode: {response.status}"
    except TimeoutError:
        return False, f'Get "{url}": context deadline exceeded'
    except aiohttp.ClientError as e:
        return False, f'Get "{url}": dial tcp {host}:{port}: connect: {_reason(e)}'


async def _tcp(socket: Obj, container: Obj, pod_ip: str, seconds: float) -> tuple[bool, str]:
    host = socket.get("host") or pod_ip
    port = _port(socket.get("port", 0), container)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), seconds)
    except TimeoutError:
        return False, f"dial tcp {host}:{port}: i/o timeout"
    except OSError as e:
        return False, f"dial tcp {host}:{port}: connect: {_os_reason(e)}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True, ""


async def _exec(
    command: list[str],
    env: Mapping[str, str],
    seconds: float,
    user: PodUser | None,
    cwd: Path | None,
) -> tuple[bool, str]:
    if not command:
        return False, "exec probe has no command"
    as_user: dict[str, Any] = (
        {"user": user.uid, "group": user.gid, "extra_groups": []} if user else {}
    )
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
            **as_user,
        )
    except OSError as e:
        return False, f"exec failed: {e.strerror}"
    try:
        output, _ = await asyncio.wait_for(process.communicate(), seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        return False, f"command timed out after {seconds:g}s"
    if process.returncode == 0:
        return True, ""
    return False, output.decode("utf-8", "replace").strip()


def _reason(error: Exception) -> str:
    cause = getattr(error, "os_error", None)
    if isinstance(cause, OSError):
        return _os_reason(cause)
    return str(error) or type(error).__name__


def _os_reason(error: OSError) -> str:
    """The reason worded as Go's net package does, without the text asyncio adds."""
    if error.errno:
        return os.strerror(error.errno).lower()
    return str(error)
