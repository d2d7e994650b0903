"""CPU and memory of pod processes, read from /proc, for metrics.k8s.io and OOM checks.

A container's processes are its session (each container starts a new one),
so one scan of /proc/*/stat groups every process by session id. Scans are
cached briefly so many readers cost one scan. Read-only: never signals a
process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kubesim.kubelet.quantities import format_cpu, format_memory

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class SessionSample:
    cpu_seconds: float
    rss_bytes: int


class ProcTable:
    """One cached scan of /proc: per session id, the summed CPU time and RSS."""

    def __init__(self, max_age: float = 0.5) -> None:
        self._max_age = max_age
        self._taken = -1e9
        self._sessions: dict[int, SessionSample] = {}

    def session(self, sid: int) -> SessionSample | None:
        now = time.monotonic()
        if now - self._taken > self._max_age:
            self._sessions = _scan()
            self._taken = now
        return self._sessions.get(sid)


def _scan() -> dict[int, SessionSample]:
    totals: dict[int, list[float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                raw = f.read().decode("ascii", "replace")
        except OSError:
            continue  # exited while we looked
        # Fields after the parenthesised command name; it may itself hold spaces.
        fields = raw[raw.rfind(")") + 2 :].split()
        sid = int(fields[3])
        cpu = (int(fields[11]) + int(fields[12])) / _TICKS
        rss = int(fields[21]) * _PAGE
        total = totals.setdefault(sid, [0.0, 0])
        total[0] += cpu
        total[1] += rss
    return {sid: SessionSample(cpu, int(rss)) for sid, (cpu, rss) in totals.items()}


class PodProcessUsage:
    """PodUsage over /proc: CPU millicores averaged since the previous reading."""

    def __init__(self, sessions_of: Callable[[str, str], Iterable[int] | None]) -> None:
        self._sessions_of = sessions_of
        self._table = ProcTable()
        self._previous: dict[tuple[str, str], tuple[float, float]] = {}

    def usage(self, namespace: str, name: str) -> dict[str, str] | None:
        sessions = self._sessions_of(namespace, name)
        if sessions is None:
            return None
        cpu = 0.0
        rss = 0
        for sid in sessions:
            sample = self._table.session(sid)
            if sample:
                cpu += sample.cpu_seconds
                rss += sample.rss_bytes
        now = time.monotonic()
        key = (namespace, name)
        before = self._previous.get(key)
        self._previous[key] = (now, cpu)
        millicores = 0
        if before and now > before[0]:
            millicores = round(1000 * max(0.0, cpu - before[1]) / (now - before[0]))
        return {"cpu": format_cpu(millicores), "memory": format_memory(rss)}

    def forget(self, namespace: str, name: str) -> None:
        self._previous.pop((namespace, name), None)

    def rss(self, sid: int) -> int:
        sample = self._table.session(sid)
        return sample.rss_bytes if sample else 0
