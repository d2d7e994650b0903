"""The life of one pod on the simulated node, from placement to removal.

A PodWorker owns one pod's containers: it "pulls" (finds the program),
starts each container, restarts it with back-off per restartPolicy, runs
its readiness probe, and on deletion stops everything (SIGTERM, grace,
SIGKILL), then removes the pod. It never writes status itself: it marks the
pod dirty and the node flushes status in batches. Every wait goes through
the node's gate so a paused kubelet makes no progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kubesim.kubelet import status as st
from kubesim.kubelet.echo import TOKEN_VARIABLES, is_echo_image
from kubesim.kubelet.environment import (
    ContainerConfigError,
    container_argv,
    container_env,
    expand,
)
from kubesim.kubelet.probes import ProbeTiming, check_readiness
from kubesim.kubelet.quantities import memory_bytes
from kubesim.kubelet.runtime import ContainerProcess, ImageNotFound, find_program
from kubesim.kubelet.users import PodUser, user_key
from kubesim.kubelet.volumes import MountFailed

if TYPE_CHECKING:
    import aiohttp

    from kubesim.contracts import ObjectStore
    from kubesim.kubelet.config import KubeletConfig
    from kubesim.kubelet.echo import EchoServers
    from kubesim.kubelet.events import EventRecorder
    from kubesim.kubelet.runtime import ProcessRuntime
    from kubesim.kubelet.users import PodUsers
    from kubesim.kubelet.volumes import VolumeHost

Obj = dict[str, Any]
log = logging.getLogger(__name__)


@dataclass
class ContainerRecord:
    """One container's spec and what runs for it now."""

    spec: Obj
    view: st.ContainerView
    process: ContainerProcess | None = None
    echo_port: int | None = None
    pulled: bool = False
    started_mono: float = 0.0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class PodNode(Protocol):
    """What a PodWorker needs of its node (kubesim.kubelet.node's NodeServices).

    Spelled out here so this module never imports the node, which imports it.
    """

    config: KubeletConfig
    store: ObjectStore
    events: EventRecorder
    runtime: ProcessRuntime
    volumes: VolumeHost
    echo: EchoServers
    probe_session: aiohttp.ClientSession
    users: PodUsers | None

    def lookup(self, resource: str, namespace: str, name: str) -> Obj | None: ...
    async def gate(self) -> None: ...
    def mark_dirty(self, worker: PodWorker) -> None: ...
    def flush_now(self, worker: PodWorker) -> None: ...
    def pod_finished(self, worker: PodWorker) -> None: ...


class PodWorker:
    """Drives one pod; created by the node for every pod it sees."""

    def __init__(self, pod: Obj, node: PodNode) -> None:
        self.pod = pod
        self.node = node
        self.namespace: str = pod["metadata"].get("namespace", "default")
        self.name: str = pod["metadata"]["name"]
        self.uid: str = pod["metadata"].get("uid") or f"{self.namespace}/{self.name}"
        spec = pod.get("spec") or {}
        self.view = st.PodView(restart_policy=spec.get("restartPolicy") or "Always")
        self.containers = [
            ContainerRecord(c, st.ContainerView(name=c["name"], image=c.get("image", "")))
            for c in spec.get("containers") or []
        ]
        self.view.containers = [record.view for record in self.containers]
        self.node_name: str | None = None
        self.volumes: dict[str, Path] = {}
        # Who the containers run as: a uid of the pod's own when the node isolates pods.
        self.user: PodUser | None = None
        self.finished = False  # reached Succeeded/Failed
        self.deleting = asyncio.Event()
        self.vanished = False  # the store no longer has it
        self.retiring = False  # being stopped for deletion or vanishing
        self._task: asyncio.Task[None] | None = None

    # -- driven by the node ---------------------------------------------------

    def start(self, node_name: str, address: str) -> None:
        """Placed on a node with an address: run the pod in its own task."""
        self.node_name = node_name
        self.view.scheduled = True
        self.view.unschedulable = None
        self.view.pod_ip = address
        self.view.host_ip = "127.0.0.1"
        self.view.start_time = st.rfc3339()
        self.node.mark_dirty(self)
        self._task = asyncio.create_task(self._live(), name=f"kubesim-pod-{self.name}")
        self._task.add_done_callback(self._lived)

    def _lived(self, task: asyncio.Task[None]) -> None:
        """The pod's task is supervised: a failure is logged, never lost."""
        if not task.cancelled() and task.exception() is not None:
            log.error("pod %s/%s failed", self.namespace, self.name, exc_info=task.exception())

    def observe(self, pod: Obj) -> None:
        """The store changed the pod (maybe our own status write)."""
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.deleting.set()

    def sessions(self) -> list[int] | None:
        running = [c.process.pid for c in self.containers if c.process and c.process.running]
        if not running and not any(c.echo_port for c in self.containers):
            return None
        return running

    def grace_period(self) -> float:
        metadata, spec = self.pod["metadata"], self.pod.get("spec") or {}
        for value in (
            metadata.get("deletionGracePeriodSeconds"),
            spec.get("terminationGracePeriodSeconds"),
        ):
            if value is None:
                continue
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                continue  # stored without a schema check: never block deletion on it
        return 30.0

    def shorten_grace(self, grace: float) -> None:
        """SIGKILL whatever still runs once the new, shorter grace period has passed."""
        asyncio.get_running_loop().call_later(max(0.0, grace), self._kill_now)

    def _kill_now(self) -> None:
        for record in self.containers:
            if record.process is not None and record.process.running:
                record.process.signal_group(signal.SIGKILL)

    async def terminate(self, grace: float, *, remove: bool) -> None:
        """Stop every container (Killing), then release and, if asked, remove the pod."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._stop_containers(grace, announce=remove)
        self.view.stopped_for_deletion = True
        if remove and not self.vanished:
            self.node.flush_now(self)
            self.node.store.remove("pods", self.namespace, self.name)

    # -- the pod's own task -----------------------------------------------------

    async def _live(self) -> None:
        await self._mount_volumes()
        for record in self.containers:
            record.tasks.append(
                asyncio.create_task(
                    self._run_container(record), name=f"kubesim-ctr-{self.name}-{record.view.name}"
                )
            )
        try:
            await asyncio.gather(*(r.tasks[0] for r in self.containers))
        finally:
            for record in self.containers:
                for task in record.tasks:
                    task.cancel()
        # Only restartPolicy Never/OnFailure get here: the pod is finished.
        self.finished = True
        self.node.mark_dirty(self)
        self.node.pod_finished(self)

    async def _mount_volumes(self) -> None:
        """Set up every volume, retrying with back-off until all are there.

        Until then no container starts: they wait in ContainerCreating and the
        pod stays Pending, as on a real node.
        """
        config = self.node.config
        # A real kubelet retries mounts from 500 ms, doubling (no faster than crash back-off).
        delay = min(0.5, config.backoff_initial)
        if self.node.users is not None:
            self.user = self.node.users.user_for(user_key(self.pod))
        while True:
            await self.node.gate()
            try:
                self.volumes = self.node.volumes.prepare(self.pod, self.node.lookup, self.user)
                return
            except MountFailed as e:
                message = str(e)
            except (OSError, ValueError, TypeError, AttributeError, KeyError) as e:
                log.warning("pod %s/%s: cannot set up volumes: %r", self.namespace, self.name, e)
                message = f"MountVolume.SetUp failed: {type(e).__name__}: {e}"
            self._event("FailedMount", message, warning=True)
            await asyncio.sleep(delay)
            delay = min(config.backoff_max, delay * 2)

    async def _run_container(self, record: ContainerRecord) -> None:
        backoff = 0.0
        while True:
            await self.node.gate()
            try:
                argv, echo = self._program(record)
                if argv is None and not echo:
                    backoff = await self._pull_failed(record, backoff)
                    continue
                self._pulled(record)
                env = self._env(record)
                argv = container_argv({"command": argv}, env) if argv else None
                started = await self._start(record, argv, env)
            except ContainerConfigError as e:
                backoff = await self._config_failed(
                    record, "CreateContainerConfigError", e, backoff
                )
                continue
            except ImageNotFound as e:
                record.pulled = False
                backoff = await self._pull_failed(record, backoff, str(e))
                continue
            except (ValueError, TypeError, AttributeError, KeyError) as e:
                # The API stores specs without a schema check: a container it
                # cannot build waits and retries; the pod's other containers
                # and every other pod go on.
                log.warning("pod %s/%s: cannot create container %s: %r",
                            self.namespace, self.name, record.view.name, e)  # fmt: skip
                backoff = await self._config_failed(record, "CreateContainerError", e, backoff)
                continue
            if not started:
                continue
            exit_code = await self._supervise(record)
            await self.node.gate()
            ran_for = time.monotonic() - record.started_mono
            if ran_for >= self.node.config.backoff_reset:
                backoff = 0.0
            if not self._restarts(exit_code):
                return
            record.view.last_state = record.view.state
            if backoff:
                record.view.state = st.waiting(
                    "CrashLoopBackOff",
                    f"back-off {backoff:g}s restarting failed container={record.view.name} "
                    f"pod={self.name}_{self.namespace}({self.uid})",
                )
                self._event(
                    "BackOff",
                    f"Back-off restarting failed container {record.view.name} in pod "
                    f"{self.name}_{self.namespace}({self.uid})",
                    warning=True,
                    container=record,
                )
            self.node.mark_dirty(self)
            backoff = await self._sleep_backoff(backoff)
            record.view.restart_count += 1

    async def _config_failed(
        self, record: ContainerRecord, reason: str, error: Exception, backoff: float
    ) -> float:
        """The container cannot be created yet: wait in `reason`, then retry after back-off."""
        record.view.state = st.waiting(reason, str(error))
        self._event("Failed", f"Error: {error}", warning=True, container=record)
        self.node.mark_dirty(self)
        return await self._sleep_backoff(backoff)

    def _restarts(self, exit_code: int) -> bool:
        policy = self.view.restart_policy
        return policy == "Always" or (policy == "OnFailure" and exit_code != 0)

    async def _sleep_backoff(self, backoff: float) -> float:
        """Wait the current back-off; return the next one (0, initial, doubling, capped)."""
        config = self.node.config
        if backoff:
            await asyncio.sleep(backoff)
            await self.node.gate()
        return min(config.backoff_max, backoff * 2 if backoff else config.backoff_initial)

    def _program(self, record: ContainerRecord) -> tuple[list[str] | None, bool]:
        """(argv before expansion, served by the shared echo server).

        Raises ContainerConfigError if naming the program needs an env that
        cannot be built (a missing secret behind `$(VAR)` in command[0]).
        """
        spec = record.spec
        image = spec.get("image", "")
        args = [str(a) for a in spec.get("args") or []]
        if spec.get("command"):
            argv = [str(c) for c in spec["command"]] + args
        elif is_echo_image(image):
            return None, True
        else:
            table = self.node.config.image_commands
            untagged = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
            base = table.get(image) or table.get(untagged)
            argv = [*base, *args] if base else [untagged.rsplit("/", 1)[-1], *args]
        program, path = argv[0], self.node.config.base_env.get("PATH")
        if "$(" in program:
            # A real kubelet expands command before the runtime looks the program up.
            env = self._env(record)
            program, path = expand(program, env), env.get("PATH")
        try:
            find_program(program, path)
        except ImageNotFound as e:
            record.view.state = st.waiting("ErrImagePull", str(e))
            return None, False
        return argv, False

    async def _pull_failed(self, record: ContainerRecord, backoff: float, why: str = "") -> float:
        image = record.view.image
        reason = why or record.view.state.get("waiting", {}).get("message", "not found")
        self._event("Pulling", f'Pulling image "{image}"', container=record)
        self._event(
            "Failed", f'Failed to pull image "{image}": {reason}', warning=True, container=record
        )
        self._event("Failed", "Error: ErrImagePull", warning=True, container=record)
        record.view.state = st.waiting("ErrImagePull", f'failed to pull image "{image}": {reason}')
        self.node.mark_dirty(self)
        wait = backoff or self.node.config.backoff_initial
        # ErrImagePull shows briefly before the back-off, as on a real node.
        await asyncio.sleep(min(wait, 1.0))
        await self.node.gate()
        record.view.state = st.waiting("ImagePullBackOff", f'Back-off pulling image "{image}"')
        self._event("BackOff", f'Back-off pulling image "{image}"', warning=True, container=record)
        self._event("Failed", "Error: ImagePullBackOff", warning=True, container=record)
        self.node.mark_dirty(self)
        await asyncio.sleep(wait)
        await self.node.gate()
        return min(self.node.config.backoff_max, wait * 2)

    def _pulled(self, record: ContainerRecord) -> None:
        image = record.view.image
        if record.pulled:
            self._event(
                "Pulled", f'Container image "{image}" already present on machine', container=record
            )
            return
        self._event("Pulling", f'Pulling image "{image}"', container=record)
        self._event(
            "Pulled",
            f'Successfully pulled image "{image}" in 0s (0s including waiting)',
            container=record,
        )
        record.pulled = True
        digest = hashlib.sha256(image.encode()).hexdigest()
        record.view.image_id = f"{image.split('@', 1)[0]}@sha256:{digest}"

    def _home(self, record: ContainerRecord) -> Path:
        """HOME and working directory: the first claim the container mounts, else its own."""
        volumes = self.node.volumes
        claim = volumes.claim_home(self.pod, record.spec, self.volumes)
        return claim if claim is not None else volumes.home(self.uid, self.user)

    def _env(self, record: ContainerRecord) -> dict[str, str]:
        base = dict(self.node.config.base_env)
        base["HOSTNAME"] = self.name
        # Never the kubelet's own HOME or TMPDIR: other pods' files and podgate's live there.
        base["HOME"] = str(self._home(record))
        base["TMPDIR"] = str(self.node.volumes.tmp(self.uid, self.user))
        if self.user is not None:
            base["USER"] = base["LOGNAME"] = self.user.name
        base.update(self.node.volumes.mount_env(record.spec, self.volumes, self.user))
        return container_env(self.pod, record.spec, self.view.pod_ip or "", self.node.lookup, base)

    async def _start(
        self, record: ContainerRecord, argv: list[str] | None, env: dict[str, str]
    ) -> bool:
        address = self.view.pod_ip or ""
        if argv is None:
            port = _first_port(record.spec, env)
            token = next((env[v] for v in TOKEN_VARIABLES if env.get(v)), None)
            try:
                await self.node.echo.serve(address, port, token, self.name)
            except (OSError, OverflowError) as e:  # address in use, port out of range
                record.view.state = st.waiting("RunContainerError", str(e))
                self._event("Failed", f"Error: {e}", warning=True, container=record)
                self.node.mark_dirty(self)
                await asyncio.sleep(self.node.config.backoff_initial)
                return False
            record.echo_port = port
        else:
            limit = ((record.spec.get("resources") or {}).get("limits") or {}).get("memory")
            log_path = self.node.volumes.log_path(self.uid, record.view.name)
            record.process = self.node.runtime.start(
                argv,
                env,
                log_path,
                memory_bytes(limit) if limit else None,
                cwd=self._home(record),
                user=self.user,
                pod=f"{self.namespace}/{self.name}",
            )
        record.view.container_id = f"kubesim://{uuid.uuid4().hex}"
        record.started_mono = time.monotonic()
        self._event("Created", f"Created container {record.view.name}", container=record)
        self._event("Started", f"Started container {record.view.name}", container=record)
        record.view.state = st.running(st.rfc3339())
        record.view.ready = False
        self.node.mark_dirty(self)
        record.tasks.append(
            asyncio.create_task(
                self._readiness(record, env), name=f"kubesim-probe-{self.name}-{record.view.name}"
            )
        )
        return True

    async def _supervise(self, record: ContainerRecord) -> int:
        """Wait for the container to end; record its terminated state; return the exit code."""
        if record.process is None:
            await asyncio.Future()  # echo containers run until the pod is deleted
        assert record.process is not None
        exit_status = await record.process.wait()
        for task in record.tasks[1:]:
            task.cancel()
        del record.tasks[1:]
        self.node.runtime.forget(record.process)
        record.process = None
        started_at = record.view.state.get("running", {}).get("startedAt")
        record.view.state = st.terminated(
            exit_status.exit_code,
            started_at,
            st.rfc3339(),
            record.view.container_id,
            reason="OOMKilled" if exit_status.oom_killed else None,
        )
        record.view.ready = False
        self.node.mark_dirty(self)
        return exit_status.exit_code

    async def _readiness(self, record: ContainerRecord, env: dict[str, str]) -> None:
        probe = record.spec.get("readinessProbe")
        if not probe:
            await self.node.gate()
            record.view.ready = True
            self.node.mark_dirty(self)
            return
        try:
            timing = ProbeTiming.of(probe)
        except (ValueError, TypeError, AttributeError) as e:
            log.warning("pod %s/%s: unreadable probe timing (%r): defaults used",
                        self.namespace, self.name, e)  # fmt: skip
            timing = ProbeTiming.of({})
        await asyncio.sleep(timing.initial_delay)
        fast = self.node.config.probe_fast_period
        successes = failures = 0
        due = time.monotonic()  # when a real kubelet would probe next
        while True:
            await self.node.gate()
            try:
                ok, message = await check_readiness(
                    probe,
                    record.spec,
                    self.view.pod_ip or "",
                    env,
                    self.node.probe_session,
                    self.user,
                    self._home(record),
                )
            except (ValueError, TypeError, AttributeError, KeyError) as e:
                ok, message = False, f"{type(e).__name__}: {e}"  # a probe spec it cannot read
            now = time.monotonic()
            regular = now >= due
            if regular:
                due = now + timing.period
            if ok:
                successes, failures = successes + 1, 0
                if successes >= timing.success_threshold and not record.view.ready:
                    record.view.ready = True
                    self.node.mark_dirty(self)
            elif regular:
                # Only failures at the real cadence count: the extra early probes
                # may make a pod ready sooner, never noisier.
                successes, failures = 0, failures + 1
                self._event(
                    "Unhealthy",
                    f"Readiness probe failed: {message}",
                    warning=True,
                    container=record,
                )
                if failures >= timing.failure_threshold and record.view.ready:
                    record.view.ready = False
                    self.node.mark_dirty(self)
            if record.view.ready:
                delay = timing.period
            else:
                delay = max(0.0, min(due - now, fast))
                fast *= 1.5
            await asyncio.sleep(delay)

    async def _stop_containers(self, grace: float, *, announce: bool) -> None:
        stops: list[Coroutine[Any, Any, Any]] = []
        for record in self.containers:
            for task in record.tasks:
                task.cancel()
            if record.process is not None and record.process.running:
                if announce:
                    self._event(
                        "Killing", f"Stopping container {record.view.name}", container=record
                    )
                stops.append(self._stop_process(record, grace))
            elif record.echo_port is not None:
                if announce:
                    self._event(
                        "Killing", f"Stopping container {record.view.name}", container=record
                    )
                stops.append(self._stop_echo(record))
        for record in self.containers:
            # A task that had failed must not stop the pod from being stopped.
            for outcome in await asyncio.gather(*record.tasks, return_exceptions=True):
                if isinstance(outcome, Exception):
                    log.error("pod %s/%s: container task failed", self.namespace, self.name,
                              exc_info=outcome)  # fmt: skip
            record.tasks.clear()
        await asyncio.gather(*stops)

    async def _stop_process(self, record: ContainerRecord, grace: float) -> None:
        assert record.process is not None
        process = record.process
        exit_status = await process.stop(grace)
        self.node.runtime.forget(process)
        record.process = None
        started_at = record.view.state.get("running", {}).get("startedAt")
        record.view.state = st.terminated(
            exit_status.exit_code, started_at, st.rfc3339(), record.view.container_id
        )
        record.view.ready = False

    async def _stop_echo(self, record: ContainerRecord) -> None:
        assert record.echo_port is not None
        await self.node.echo.stop_serving(self.view.pod_ip or "", record.echo_port)
        record.echo_port = None
        started_at = record.view.state.get("running", {}).get("startedAt")
        record.view.state = st.terminated(0, started_at, st.rfc3339(), record.view.container_id)
        record.view.ready = False

    def _event(
        self,
        reason: str,
        message: str,
        *,
        warning: bool = False,
        container: ContainerRecord | None = None,
    ) -> None:
        self.node.events.record(
            self.pod,
            reason,
            message,
            warning=warning,
            container=container.view.name if container else None,
            host=self.node_name,
        )


def _first_port(container: Obj, env: dict[str, str]) -> int:
    for port in container.get("ports") or []:
        if port.get("containerPort"):
            return int(port["containerPort"])
    return int(env.get("PORT") or 8888)
