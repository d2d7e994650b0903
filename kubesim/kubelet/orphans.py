"""Records of the pod processes a kubelet started, so the next kubelet can end its orphans.

kubesim's API store lives in memory: after its process is killed (SIGKILL,
OOM), its pods are gone from the API while their processes run on. A real
kubelet kills the containers of pods its API server no longer has; this
module lets a kubelet started later do the same. Each running kubelet keeps
a directory `<state_dir>/<boot id>-<pid>-<start>-<n>` (named after its
process; n tells kubelets of one process apart) with
one small JSON file per container process: its pid (= its process group),
its start time from /proc/<pid>/stat and its pod. At start, a kubelet ends
the recorded processes of every such directory whose owner is no longer
running: SIGTERM to each group, SIGKILL after the grace period; then it
removes the directory and the dead kubelet's own temporary data dir.

Never signals a process unless its start time (ticks since this boot)
matches the record, so a pid reused since is left alone; never touches the
records of a kubelet that still runs, so kubelets sharing a state dir (two
podgates of one user) leave each other's pods be.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import shutil
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)


def boot_id() -> str:
    """This boot's id: process start times only mean something within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"


def start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), None if there is no such live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields follow the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


_instances = itertools.count()


def _owner_name(pid: int) -> str:
    return f"{boot_id()}-{pid}-{start_ticks(pid)}-{next(_instances)}"


def _owner_alive(name: str) -> bool:
    """Whether the process a records directory is named after still runs."""
    parts = name.rsplit("-", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return False
    boot, pid, ticks, _ = parts
    return boot == boot_id() and str(start_ticks(int(pid))) == ticks


class ProcessLedger:
    """This kubelet's records: one file per container process it runs now."""

    def __init__(self, state_dir: Path, scratch_dir: Path | None) -> None:
        """scratch_dir: a data dir of this kubelet's own, removed by whoever ends its orphans."""
        self.dir = state_dir / _owner_name(os.getpid())
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        owner = {"scratch_dir": str(scratch_dir) if scratch_dir else None}
        self._write("owner.json", owner)

    def add(self, pid: int, pod: str) -> None:
        ticks = start_ticks(pid)
        if ticks is None:
            return  # already gone: nothing to end later
        try:
            self._write(f"{pid}.json", {"pid": pid, "start": ticks, "pod": pod})
        except OSError as e:  # a record lost must not stop the pod
            log.warning("cannot record pod process %d in %s: %s", pid, self.dir, e)

    def remove(self, pid: int) -> None:
        with contextlib.suppress(OSError):
            (self.dir / f"{pid}.json").unlink()

    def close(self) -> None:
        """Stopped cleanly: nothing of ours is left to end."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def _write(self, name: str, data: dict[str, object]) -> None:
        # Whole or absent: a kubelet killed mid-write leaves no half record.
        temporary = self.dir / f".{name}.tmp"
        temporary.write_text(json.dumps(data))
        temporary.rename(self.dir / name)


def _recorded(directory: Path) -> tuple[list[int], Path | None]:
    """(process groups to end, the dead kubelet's scratch dir) from its records."""
    groups: list[int] = []
    scratch: Path | None = None
    for path in directory.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if path.name == "owner.json":
            scratch = Path(data["scratch_dir"]) if data.get("scratch_dir") else None
        elif isinstance(data.get("pid"), int) and start_ticks(data["pid"]) == data.get("start"):
            groups.append(data["pid"])
    return groups, scratch


def _signal_groups(groups: list[int], signum: int) -> None:
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    return True


def _dead_owners(state_dir: Path) -> tuple[list[int], list[tuple[Path, Path | None]]]:
    """Of kubelets no longer running: (groups to end, (records, scratch dir) to remove)."""
    if not state_dir.is_dir():
        return [], []
    boot = boot_id()
    groups: list[int] = []
    leftovers: list[tuple[Path, Path | None]] = []
    for directory in state_dir.iterdir():
        if not directory.is_dir() or _owner_alive(directory.name):
            continue
        found, scratch = _recorded(directory)
        if directory.name.startswith(boot + "-"):  # pids of another boot are someone else's
            groups += found
        leftovers.append((directory, scratch))
    return groups, leftovers


async def _wait_gone(groups: list[int], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(map(_group_alive, groups)):
            return
        await asyncio.sleep(0.05)


async def end_orphans(state_dir: Path, grace: float) -> list[int]:
    """End what dead kubelets recorded under `state_dir`; the process groups ended."""
    groups, leftovers = await asyncio.to_thread(_dead_owners, state_dir)
    if groups:
        log.warning(
            "ending %d pod process(es) left running by a kubelet that was killed: %s",
            len(groups),
            " ".join(map(str, groups)),
        )
        _signal_groups(groups, signal.SIGTERM)
        await _wait_gone(groups, grace)
        _signal_groups([g for g in groups if _group_alive(g)], signal.SIGKILL)
        await _wait_gone(groups, 1.0)
    for directory, scratch in leftovers:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(directory, ignore_errors=True)
    return groups
