"""Container processes: start, watch for exit, stop with SIGTERM then SIGKILL.

Each container runs as its own session and process group, so signals reach
every process it started and a container's leftovers are killed when its
main process exits (as a container runtime does when PID 1 ends). Exits are
noticed through pidfds on the event loop, with no thread or poll per
process. Memory limits are enforced by one loop that checks the RSS of the
limited containers and SIGKILLs the group (OOMKilled, exit code 137).
Never leaves a process behind: stop_all() and an interpreter-exit hook kill
whatever is still running. Given a PodUser, the process runs as that uid
with no supplementary groups (kubesim.kubelet.users).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubesim.kubelet.orphans import ProcessLedger
from kubesim.kubelet.usage import ProcTable
from kubesim.kubelet.users import PodUser, closed_to_others

log = logging.getLogger(__name__)

# Process groups still alive in this interpreter, killed at exit if stop() never ran.
_LIVE_GROUPS: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int
    oom_killed: bool = False


class ImageNotFound(Exception):
    """The container's program does not exist: the simulated "image cannot be pulled"."""


def find_program(name: str, path: str | None) -> str:
    """The executable for command[0]: a path to a file, or a name looked up on PATH."""
    if os.sep in name:
        if os.path.isfile(name) and os.access(name, os.X_OK):
            return name
        raise ImageNotFound(f"{name}: no such executable file")
    found = shutil.which(name, path=path)
    if found is None:
        raise ImageNotFound(f'executable "{name}" not found in $PATH')
    return found


def _check_reachable(program: str, user: PodUser) -> None:
    """The pod's user must be able to run the program: say why not instead of EACCES."""
    closed = closed_to_others(Path(program).parent)
    if closed is not None:
        raise ImageNotFound(
            f"{program}: not reachable by the pod's user {user.uid}: {closed} is closed to "
            "other users (install the program where every user may read it)"
        )


class ContainerProcess:
    """One running container: its main process and everything in its process group."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        memory_limit: int | None,
        ledger: ProcessLedger | None = None,
    ) -> None:
        self.pid = popen.pid
        self.memory_limit = memory_limit
        self.oom_killed = False
        self._popen = popen
        self._ledger = ledger
        self._exited: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        self._pidfd = os.pidfd_open(self.pid)
        _LIVE_GROUPS.add(self.pid)
        asyncio.get_running_loop().add_reader(self._pidfd, self._reap)

    @property
    def running(self) -> bool:
        return not self._exited.done()

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self._exited)

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signum)

    def kill_for_memory(self) -> None:
        self.oom_killed = True
        self.signal_group(signal.SIGKILL)

    async def stop(self, grace: float) -> ExitStatus:
        """SIGTERM the group, then SIGKILL once `grace` seconds have passed."""
        if self.running:
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait(), timeout=max(0.0, grace))
        if self.running:
            self.signal_group(signal.SIGKILL)
        status = await self.wait()
        await self._group_gone(within=1.0)
        return status

    async def _group_gone(self, within: float) -> None:
        """Wait (bounded) until the rest of the group has died from the SIGKILL too."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                os.killpg(self.pid, 0)
            except OSError:
                return
            await asyncio.sleep(0.01)

    def _reap(self) -> None:
        # The main process is gone; whatever it left in its group goes with it.
        # Signalled before reaping: until then the pid (= pgid) cannot be reused.
        self.signal_group(signal.SIGKILL)
        code = self._popen.poll()
        if code is None:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        _LIVE_GROUPS.discard(self.pid)
        if self._ledger is not None:
            self._ledger.remove(self.pid)
        exit_code = 128 - code if code < 0 else code
        if not self._exited.done():
            self._exited.set_result(ExitStatus(exit_code, self.oom_killed))


class ProcessRuntime:
    """Starts container processes and enforces their memory limits."""

    def __init__(
        self, memory_check_interval: float = 0.5, ledger: ProcessLedger | None = None
    ) -> None:
        self._interval = memory_check_interval
        self._ledger = ledger  # records each process for a later kubelet if this one is killed
        self._limited: set[ContainerProcess] = set()
        self._all: set[ContainerProcess] = set()
        self._table = ProcTable(max_age=memory_check_interval / 2)
        self._memory_task: asyncio.Task[None] | None = None

    def start(
        self,
        argv: list[str],
        env: Mapping[str, str],
        log_path: Path,
        memory_limit: int | None = None,
        cwd: Path | None = None,
        user: PodUser | None = None,
        pod: str = "",
    ) -> ContainerProcess:
        """Start the process now (raises ImageNotFound if argv[0] cannot be run)."""
        program = find_program(argv[0], env.get("PATH"))
        if user is not None:
            _check_reachable(program, user)
        as_user: dict[str, object] = (
            {"user": user.uid, "group": user.gid, "extra_groups": []} if user else {}
        )
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as output:
            try:
                popen = subprocess.Popen(
                    [program, *argv[1:]],
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=cwd,
                    **as_user,  # type: ignore[arg-type]
                )
            except OSError as e:
                raise ImageNotFound(f"{argv[0]}: {e.strerror}") from e
        if self._ledger is not None:
            self._ledger.add(popen.pid, pod)
        process = ContainerProcess(popen, memory_limit, self._ledger)
        self._all.add(process)
        if memory_limit:
            self._limited.add(process)
            if self._memory_task is None or self._memory_task.done():
                self._memory_task = asyncio.create_task(
                    self._enforce_memory(), name="kubesim-kubelet-memory-limits"
                )
        return process

    def forget(self, process: ContainerProcess) -> None:
        self._all.discard(process)
        self._limited.discard(process)

    async def stop_all(self, grace: float) -> None:
        processes = [p for p in self._all if p.running]
        await asyncio.gather(*(p.stop(grace) for p in processes))
        self._all.clear()
        self._limited.clear()
        if self._memory_task:
            self._memory_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._memory_task

    async def _enforce_memory(self) -> None:
        """One loop for every limited container; it ends when none is left."""
        while self._limited:
            started = time.monotonic()
            for process in list(self._limited):
                if not process.running:
                    self._limited.discard(process)
                    continue
                sample = self._table.session(process.pid)
                if sample and process.memory_limit and sample.rss_bytes > process.memory_limit:
                    log.info("container pid %s over its memory limit: OOM kill", process.pid)
                    process.kill_for_memory()
                    self._limited.discard(process)
            await asyncio.sleep(max(0.05, self._interval - (time.monotonic() - started)))
