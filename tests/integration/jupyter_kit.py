"""Helpers for the end-to-end tests that run podgate and kubesim as real processes.

`start_podgate_process` runs `python -m podgate.cli run` with a YAML config
and reads the URLs from its banner; `start_kubesim_process` runs `podgate
sim` alone and reads its kubeconfig; `KubeRest` (from tests/kube_servers.py)
talks to either API server with its bearer token (the REST a kubectl uses); the
/proc helpers find a process's children and what is left of them after it
exits; `run_code` speaks the Jupyter messaging protocol (v5, JSON over the
default WebSocket protocol) to a kernel.

Every wait here is bounded. Nothing in this module mocks podgate: it only
starts processes, reads what they print and speaks their public protocols.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import yaml
from kube_servers import KubeRest as KubeRest  # re-exported: tests import it from here

BANNER = re.compile(r"podgate: public (http://\S+)  ops (http://\S+)")
KUBESIM_BANNER = re.compile(r"kubesim listening on (https?://\S+)")
# kubernetes_asyncio trusts proxy variables: keep loopback direct in children too.
LOOPBACK_ENV = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def free_port() -> int:
    """A loopback port that was free a moment ago (for a URL that must survive a restart)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def eventually(
    check: Callable[[], Awaitable[bool]], seconds: float, what: str, every: float = 0.1
) -> None:
    """Wait until `check()` is true, at most `seconds`; fail naming `what` otherwise."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        await asyncio.sleep(every)


# -- processes ---------------------------------------------------------------------------


@dataclass
class Child:
    """A process of ours started in its own session (so its whole group can be ended)."""

    process: asyncio.subprocess.Process
    out: Path  # stdout: the banner
    log: Path  # stderr: the log lines

    @property
    def pid(self) -> int:
        return self.process.pid

    def logs(self) -> str:
        return tail(self.log)

    async def wait_for_line(self, pattern: re.Pattern[str], seconds: float) -> re.Match[str]:
        """The first stdout line matching `pattern`; fails with the log if it dies or times out."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            match = pattern.search(self.out.read_text(errors="replace"))
            if match:
                return match
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"no line matching {pattern.pattern!r} (exit {self.process.returncode}); "
            f"log:\n{self.logs()}"
        )

    async def signal_and_wait(self, signum: int, seconds: float) -> int:
        """Send `signum` to the process itself; its exit status within `seconds`."""
        if self.process.returncode is None:
            self.process.send_signal(signum)
        return await asyncio.wait_for(self.process.wait(), seconds)

    async def end(self, grace: float = 5.0) -> None:
        """Cleanup: SIGTERM, then SIGKILL the whole group; never raises."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.process.wait(), grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.process.returncode is None:
            await self.process.wait()


def _output_files(workdir: Path, name: str) -> tuple[Path, Path, BinaryIO, BinaryIO]:
    out, log = workdir / f"{name}.out", workdir / f"{name}.log"
    return out, log, open(out, "wb"), open(log, "ab")


async def start_child(argv: list[str], workdir: Path, name: str, env: Mapping[str, str]) -> Child:
    out, log, stdout_file, stderr_file = _output_files(workdir, name)
    with stdout_file as stdout, stderr_file as stderr:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=workdir,
            env={**os.environ, **LOOPBACK_ENV, **env},
            start_new_session=True,
        )
    return Child(process, out, log)


@dataclass
class PodgateProcess(Child):
    public: str = ""
    ops: str = ""
    # Sessions of pod processes the embedded kubelet started (they run in their
    # own sessions): ended at cleanup if podgate failed to end them.
    pod_sessions: set[int] = field(default_factory=set)

    async def end(self, grace: float = 5.0) -> None:
        await super().end(grace)
        kill_sessions(self.pod_sessions)


async def start_podgate_process(
    config: Mapping[str, Any],
    workdir: Path,
    name: str = "podgate",
    env: Mapping[str, str] | None = None,
    seconds: float = 30.0,
) -> PodgateProcess:
    """`podgate run --config FILE` with `config`; returns once it printed its URLs."""
    config_file = workdir / f"{name}.yaml"
    config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    argv = [sys.executable, "-m", "podgate.cli", "run", "--config", str(config_file)]
    child = await start_child(argv, workdir, name, env or {})
    podgate = PodgateProcess(child.process, child.out, child.log)
    try:
        match = await podgate.wait_for_line(BANNER, seconds)
    except BaseException:
        await podgate.end()
        raise
    podgate.public, podgate.ops = match.group(1), match.group(2)
    return podgate


@dataclass
class KubesimProcess(Child):
    url: str = ""
    kubeconfig: Path = field(default_factory=Path)
    token: str = ""


async def start_kubesim_process(
    workdir: Path, seconds: float = 20.0, env: Mapping[str, str] | None = None
) -> KubesimProcess:
    """`podgate sim` on a port of its choosing, plain HTTP, with its kubeconfig written."""
    kubeconfig = workdir / "kubesim.kubeconfig"
    argv = [sys.executable, "-m", "podgate.cli", "sim", "--listen", "127.0.0.1:0"]
    argv += ["--kubeconfig", str(kubeconfig), "--plain-http"]
    child = await start_child(argv, workdir, "kubesim", env or {})
    sim = KubesimProcess(child.process, child.out, child.log)
    try:
        match = await sim.wait_for_line(KUBESIM_BANNER, seconds)
    except BaseException:
        await sim.end()
        raise
    document = yaml.safe_load(kubeconfig.read_text())
    sim.url, sim.kubeconfig = match.group(1), kubeconfig
    sim.token = document["users"][0]["user"]["token"]
    return sim


# -- the cluster the processes run against ----------------------------------------------


@dataclass(frozen=True)
class ClusterAccess:
    """How a test and podgate processes reach the cluster."""

    url: str
    kubeconfig: Path  # admin, namespace "podgate": what podgate's `cluster.kubeconfig` names
    token: str
    ca_file: Path | None = None  # None: plain HTTP (kubesim)
    agent: Any = None  # the real server's node agent; None on kubesim

    @property
    def real(self) -> bool:
        return self.agent is not None


async def pause_kubelet(cluster: ClusterAccess, kube: KubeRest, paused: bool) -> None:
    """Hold (or let go) the kubelet: pods stay as they are, new ones stay pending."""
    if cluster.agent is not None:
        cluster.agent.set_paused(paused)
    else:
        await kube.set_faults({"kubelet_paused": paused})


# -- processes on this machine, from /proc -----------------------------------------------


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgrp: int
    session: int
    state: str
    cmdline: str


def _proc(pid: int) -> ProcInfo | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None  # gone meanwhile
    # The command name may hold spaces and parentheses: fields follow the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return ProcInfo(pid, int(fields[1]), int(fields[2]), int(fields[3]), fields[0], cmdline)


def processes() -> list[ProcInfo]:
    found = (_proc(int(entry)) for entry in os.listdir("/proc") if entry.isdigit())
    return [info for info in found if info is not None]


def children_of(pid: int) -> list[ProcInfo]:
    return [info for info in processes() if info.ppid == pid]


def living_in_sessions(sessions: set[int]) -> list[ProcInfo]:
    """Processes (not zombies) left in any of `sessions`."""
    return [p for p in processes() if p.session in sessions and p.state != "Z"]


def kill_sessions(sessions: set[int]) -> None:
    """Cleanup for a failed test: SIGKILL whatever is left in those sessions."""
    for info in living_in_sessions(sessions):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(info.pid, signal.SIGKILL)


# -- the Jupyter kernel protocol ---------------------------------------------------------


def execute_request(code: str, session: str) -> dict[str, Any]:
    """A v5 execute_request for the shell channel, as JupyterLab sends it."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "username": "podgate-test",
            "session": session,
            "date": "",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "buffers": [],
        "channel": "shell",
    }


async def run_code(
    ws: aiohttp.ClientWebSocketResponse, code: str, session: str, seconds: float = 30.0
) -> str:
    """Run `code` in the kernel behind `ws`; the text/plain of its execute_result.

    The result (iopub) and the reply (shell) travel on different channels, so
    Jupyter's protocol lets either arrive first: wait for both.
    """
    request = execute_request(code, session)
    msg_id = request["header"]["msg_id"]
    await ws.send_json(request)
    result: str | None = None
    replied = False
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        assert frame.type == aiohttp.WSMsgType.TEXT, f"unexpected frame {frame!r}"
        message = json.loads(frame.data)
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue  # status of other requests, kernel_info, ...
        kind = message["header"]["msg_type"]
        if kind == "execute_result":
            result = message["content"]["data"]["text/plain"]
        elif kind == "error":
            raise AssertionError(f"the kernel raised: {message['content']}")
        elif kind == "execute_reply":
            assert message["content"]["status"] == "ok", message["content"]
            replied = True
        if replied and result is not None:
            return result
    if replied:
        raise AssertionError(f"execute_reply came, but no execute_result within {seconds} s")
    raise AssertionError(f"no execute_reply for {code!r} within {seconds} s")
