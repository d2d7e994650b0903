"""Processes the benchmark starts: free ports, CPU pinning, readiness, /proc figures.

Every process started here is stopped by the caller through `Managed.stop`,
and every wait is bounded in time. Nothing here knows about a peer or a
workload.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Idle-WebSocket runs hold tens of thousands of sockets across proxy,
# client and upstream; the default soft limit is far below that.
WANTED_OPEN_FILES = 65_536
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A loopback port that was free a moment ago (the peer binds it by number)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_open_files_limit() -> int:
    """Raise this process's open-file limit as far as allowed (children inherit it).

    Returns the limit now in force. Raising the hard limit needs
    CAP_SYS_RESOURCE, which containers often lack even for root.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < WANTED_OPEN_FILES:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (WANTED_OPEN_FILES, WANTED_OPEN_FILES))
            return WANTED_OPEN_FILES
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def idle_sockets_within(open_files: int, wanted: int) -> int:
    """How many relayed sockets fit: a proxy holds two descriptors per socket, plus spares."""
    fits = (open_files - 200) // 2 // 100 * 100
    return max(0, min(wanted, fits))


def pinned(cmd: Sequence[str], cpus: str | None) -> list[str]:
    """`cmd` run through taskset on `cpus` ("0", "1", "0-1"), or unpinned."""
    if not cpus or shutil.which("taskset") is None:
        return list(cmd)
    return ["taskset", "-c", cpus, *cmd]


@dataclass
class Managed:
    """A started process, its log file, and how to stop it."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(self.stop_signal)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.popen.wait(timeout=grace)


def start(
    name: str,
    cmd: Sequence[str],
    *,
    log_dir: Path,
    cpus: str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Managed:
    """Start `cmd` pinned to `cpus`, output to a log file in `log_dir`."""
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            pinned(cmd, cpus),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,  # a Ctrl-C in the terminal reaches only the harness
        )
    return Managed(name=name, popen=popen, log_path=log_path)


def wait_for_port(port: int, *, timeout: float, proc: Managed | None = None) -> bool:
    """True once 127.0.0.1:`port` accepts connections; False on timeout or process exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            return False
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (e.g. nginx's worker under its master)."""
    found: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    with contextlib.suppress(OSError):
        for task in task_dir.iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used, all its threads included."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces: fields start after its closing paren.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_kib(pid: int) -> int:
    return _status_kib(pid, "VmRSS")


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the resident set's high-water mark since start or the last reset."""
    return _status_kib(pid, "VmHWM")


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs "5"), so a peak is per workload."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False
