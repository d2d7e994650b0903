"""Spawner: starts and stops each user's server pod through the Kubernetes API.

A start creates the user's claim (once) and pod, then waits in one named,
supervised task for the pod to turn Ready, learning about it from the shared
pod informer (no polling per user) and telling the user how far it got
through SpawnProgress. A terminal failure (image, crash loop, memory, no
room, exited) or the start timeout deletes the pod and records the reason in
words. Pod names are deterministic, so a second start of the same user,
here or in another replica, meets a 409 and joins the start under way.

Every server is named by its key (control.names.server_key): the user name
for their default server, "user/server" for a named one. The `user`
parameters below are such keys, so a default server is handled exactly as
before named servers existed.

Kubernetes is the source of truth: status() reads the informer's cache, so a
restarted podgate reports running servers as running without touching them.
It never deletes a pod because an API call failed, and close() (shutdown)
leaves every pod as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from control import names
from control.errors import (
    AlreadyExists,
    BadProfile,
    ClusterNotSynced,
    KubeError,
    KubeThrottled,
    NotFound,
    SpawnFailed,
    SpawnLimitReached,
)
from control.informer import Informer
from control.kube import Kube, Object
from control.manifests import pod_key, pod_manifest, pod_profile, pvc_manifest, server_url
from control.pacing import StartPacer
from control.pod_state import (
    event_detail,
    is_deleting,
    is_ready,
    progress_message,
    start_failure,
)
from control.progress import ProgressEvent, SpawnProgress
from control.settings import Profile, SpawnerSettings
from control.stop_cause import StopCause

log = logging.getLogger(__name__)

# Metrics hook: observer(outcome, user, seconds, reason), outcome one of
# "ready" (seconds from start to Ready), "failed" (reason = SpawnFailed.reason),
# "limited" (a start refused by the concurrency limit; seconds 0) and
# "stopped" (seconds the delete call took). Called synchronously; its
# exceptions are logged and ignored.
SpawnObserver = Callable[[str, str, float, str], None]

State = Literal["stopped", "starting", "running", "stopping", "failed"]

# Seconds a start refused by the limit is told to wait: spread over a range so
# the refused do not all come back in the same instant (a storm of 1,000 came in
# waves of the limit's size every RETRY_AFTER seconds with one fixed value).
RETRY_AFTER = (1.0, 4.0)
NOT_SYNCED_RETRY_AFTER = 3.0  # seconds: a start asked for before the first pod list
THROTTLED_RETRIES = 5  # creates answered 429 are tried again this many times
MAX_THROTTLED_WAIT = 10.0  # seconds, whatever Retry-After says
MAX_FAILURES_KEPT = 10_000  # last failure per user, oldest forgotten first
DELETE_FAILED_GRACE = 1  # seconds: a failed start's pod holds nothing worth waiting for


@dataclass(frozen=True)
class ServerStatus:
    """A user's server as this replica sees it now."""

    state: State
    pod: str | None = None
    url: str | None = None
    profile: str | None = None
    started: datetime.datetime | None = None
    ready_at: datetime.datetime | None = None
    failure: SpawnFailed | None = None


@dataclass(eq=False)
class _Start:
    """One start under way: what it is for and what its task has learnt."""

    user: str
    pod_name: str
    profile: Profile | None
    started: datetime.datetime
    began: float  # time.monotonic() at start, for the observer
    created: asyncio.Future[None]  # done once the pod exists (or the start failed first)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # the pod changed
    uid: str | None = None  # of the pod this start waits for
    gone: bool = False  # that pod was deleted
    task: asyncio.Task[None] | None = None


def _parse_time(value: object) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _uid(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


class Spawner:
    """Starts, stops and reports user servers; one per process, sharing the pod informer."""

    def __init__(
        self,
        kube: Kube,
        settings: SpawnerSettings,
        pods: Informer,
        events: Informer | None,
        progress: SpawnProgress,
        *,
        observer: SpawnObserver | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.pods = pods
        self.events = events
        self.progress = progress
        self._observer = observer
        self._starts: dict[str, _Start] = {}
        self._by_pod: dict[str, _Start] = {}  # the same starts by pod name, for Events
        # user -> (last failure, uid of the pod that failed, "" if none was made)
        self._failures: OrderedDict[str, tuple[SpawnFailed, str]] = OrderedDict()
        self._closed = False
        self._pacer = StartPacer(settings.start_rate)
        # Users someone waits on (a progress stream of a start another replica made).
        self._pod_changes: dict[str, asyncio.Event] = {}
        # Named servers with a pod, by user (user -> pod name -> server): servers_of() is
        # asked per user model, so it must not walk every pod.
        self._named_pods: dict[str, dict[str, str]] = {}
        pods.add_listener(self._on_pod)
        if events is not None:
            events.add_listener(self._on_event)

    # -- the interface -----------------------------------------------------------------

    async def start(self, user: str, profile_slug: str | None = None) -> None:
        """Start the user's server (or join the start under way); returns once the pod exists.

        BadProfile for a profile not offered, SpawnLimitReached when too many
        starts are under way, SpawnFailed when the pod could not be created.
        Waiting for Ready goes on in the background: follow progress, or wait().
        """
        try:
            profile = self.settings.profile(profile_slug)
        except KeyError:
            raise BadProfile(f"there is no profile {profile_slug!r} to choose") from None
        run = self._starts.get(user)
        if run is None:
            if self._closed:
                raise SpawnFailed("error", "podgate is shutting down")
            if not self.pods.synced.is_set():
                raise ClusterNotSynced(NOT_SYNCED_RETRY_AFTER)
            pod = self._pod(user)
            if pod is not None and is_ready(pod):
                return  # already running: nothing to start
            if len(self._starts) >= self.settings.concurrent_spawn_limit:
                self._observe("limited", user, 0.0, "")
                raise SpawnLimitReached(round(random.uniform(*RETRY_AFTER), 1))
            run = self._begin(user, profile)
        await asyncio.shield(run.created)

    async def stop(self, user: str, cause: StopCause | None = None) -> None:
        """Delete the user's pod (grace stop_grace_seconds), ending a start under way.

        The claim is kept. A pod already gone is fine; other API errors raise.
        One log line names the server and the `cause` (who asked, and why).
        """
        cause = cause or StopCause()
        run = self._starts.get(user)
        if run is not None and run.task is not None:
            run.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run.task
        self._failures.pop(user, None)
        began = time.monotonic()
        name = names.pod_name(user, self.settings.pod_name_prefix)
        gone = ""
        try:
            await self.kube.delete(
                "pods",
                self.settings.namespace,
                name,
                grace_seconds=self.settings.stop_grace_seconds,
            )
        except NotFound:
            gone = "; it had no pod"
        log.info(
            "stopping %s's server (pod %s) %s%s",
            user,
            name,
            cause.words(),
            gone,
            extra={"user": user, "pod": name, **cause.fields()},
        )
        self._observe("stopped", user, time.monotonic() - began, "")

    def status(self, user: str) -> ServerStatus:
        pod = self._pod(user)
        run = self._starts.get(user)
        name = names.pod_name(user, self.settings.pod_name_prefix)
        profile = (pod_profile(pod) if pod is not None else None) or (
            run.profile.slug if run is not None and run.profile is not None else None
        )
        started = run.started if run is not None else None
        if pod is not None and started is None:
            started = _parse_time(pod.get("metadata", {}).get("creationTimestamp"))
        if pod is not None and is_ready(pod):
            return ServerStatus(
                "running",
                pod=name,
                url=server_url(user),
                profile=profile,
                started=started,
                ready_at=_ready_since(pod),
            )
        if run is not None:
            return ServerStatus("starting", pod=name, profile=profile, started=started)
        failure, failed_uid = self._failures.get(user, (None, ""))
        if failure is not None and (pod is None or _uid(pod) == failed_uid):
            return ServerStatus("failed", pod=name if pod else None, failure=failure)
        if pod is not None:
            # Deleting, or under way from another replica (or before a restart).
            if is_deleting(pod):
                return ServerStatus("stopping", pod=name, profile=profile, started=started)
            failure = self._stalled(pod, started)
            if failure is not None:
                # A start nobody here watches that has failed: say so, in words (a
                # new start joins the pod, sees the same and deletes it).
                return ServerStatus("failed", pod=name, profile=profile, failure=failure)
            return ServerStatus("starting", pod=name, profile=profile, started=started)
        return ServerStatus("stopped")

    def _stalled(self, pod: Object, started: datetime.datetime | None) -> SpawnFailed | None:
        """Why a pod started elsewhere (or before a restart) will not run, if it will not."""
        failure = start_failure(pod, wait_unschedulable=self.settings.unschedulable == "wait")
        if failure is not None:
            return failure
        if started is not None:
            age = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
            if age > self.settings.start_timeout:
                return SpawnFailed(
                    "timeout",
                    f"the server did not become ready within {self.settings.start_timeout:g} "
                    "seconds",
                )
        return None

    # The interface names its bound `timeout`, as callers (the API's wait) think of it.
    async def wait(self, user: str, timeout: float) -> ServerStatus:  # noqa: ASYNC109
        """The status once the start under way has ended, or after `timeout` seconds."""
        run = self._starts.get(user)
        if run is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await run.finished.wait()
        return self.status(user)

    def running_servers(self) -> list[str]:
        """Keys of the servers (default and named) whose pod is Ready, as the informer sees it."""
        keys = (pod_key(pod) for pod in self.pods.cache.values() if is_ready(pod))
        return sorted(key for key in keys if key is not None)

    def running_users(self) -> list[str]:
        """Users with at least one server whose pod is Ready, as the informer sees it now."""
        return sorted({names.split_key(key)[0] for key in self.running_servers()})

    def servers_of(self, user: str) -> list[str]:
        """Names of `user`'s named servers that have a pod or a start under way here."""
        found = set(self._named_pods.get(user, {}).values())
        prefix = user + "/"
        found.update(key[len(prefix) :] for key in self._starts if key.startswith(prefix))
        return sorted(found)

    async def close(self) -> None:
        """Cancel the starts under way; the pods stay (a restart or another replica adopts them)."""
        self._closed = True
        tasks = [run.task for run in self._starts.values() if run.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- one start ---------------------------------------------------------------------

    def _begin(self, user: str, profile: Profile | None) -> _Start:
        loop = asyncio.get_running_loop()
        run = _Start(
            user=user,
            pod_name=names.pod_name(user, self.settings.pod_name_prefix),
            profile=profile,
            started=datetime.datetime.now(datetime.UTC),
            began=time.monotonic(),
            created=loop.create_future(),
        )
        # Nobody may be awaiting it (a start from the API that does not wait).
        run.created.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._starts[user] = run
        self._by_pod[run.pod_name] = run
        self._failures.pop(user, None)
        self.progress.reset(user)
        self.progress.publish(user, ProgressEvent(0, "Server requested"))
        run.task = asyncio.create_task(self._supervise(run), name=f"spawn-{run.pod_name}")
        return run

    async def _supervise(self, run: _Start) -> None:
        user = run.user
        try:
            try:
                async with asyncio.timeout(self.settings.start_timeout):
                    await self.pods.synced.wait()
                    await self._wait_for_turn(run)
                    await self._create(run)
                    self._settle(run.created)
                    await self._until_ready(run)
            except TimeoutError:
                await self._timed_out(run)
            self._settle(run.created)
            url = server_url(user)
            self.progress.publish(
                user, ProgressEvent(100, f"Server ready at {url}", ready=True, url=url)
            )
            self._observe("ready", user, time.monotonic() - run.began, "")
        except SpawnFailed as failure:
            # Not after an API fault (the pod may be fine) nor when someone else
            # is deleting it already (their grace period stands).
            if failure.reason not in ("api_error", "deleted") and run.uid:
                await self._delete_failed(run)
            self._fail(run, failure)
        except asyncio.CancelledError:
            self._settle(run.created, SpawnFailed("deleted", "the server was stopped"))
            self.progress.publish(
                user, ProgressEvent(100, "Start cancelled: the server was stopped", failed=True)
            )
            raise
        except Exception:
            log.exception("start of %s failed unexpectedly", run.pod_name)
            self._fail(run, SpawnFailed("error", "the server could not be started"))
        finally:
            if self._starts.get(user) is run:
                del self._starts[user]
            if self._by_pod.get(run.pod_name) is run:
                del self._by_pod[run.pod_name]
            run.finished.set()

    async def _wait_for_turn(self, run: _Start) -> None:
        """Wait for the pacer's turn; a caller of start() is not held meanwhile."""
        delay = self._pacer.delay()
        if delay <= 0:
            return
        self._publish(run, 1, f"Waiting for a start slot (about {delay:.0f} s)")
        # The page follows progress from here; a failure to create shows there.
        self._settle(run.created)
        await asyncio.sleep(delay)

    async def _create(self, run: _Start) -> None:
        """The claim if missing, then the pod; a pod that exists already is joined."""
        settings = self.settings
        if settings.storage is not None:
            try:
                await self._create_object(
                    run, "persistentvolumeclaims", pvc_manifest(run.user, settings)
                )
            except AlreadyExists:
                pass  # kept from an earlier start
            except KubeError as e:
                raise _api_failure("create the storage for", e) from e
        body = pod_manifest(run.user, settings, run.profile, secrets.token_urlsafe(32))
        while True:
            try:
                created = await self._create_object(run, "pods", body)
            except AlreadyExists:
                existing = await self._existing(run)
                if existing is None:
                    continue  # it went between our create and our get: create again
                if not is_deleting(existing):
                    run.uid = _uid(existing)  # a start under way here or elsewhere: join it
                    self._publish(run, 5, "Joining the server already starting")
                    self._replay_events(run)
                    break
                self._publish(run, 5, "Waiting for the previous server to stop")
                # That can take its whole grace period: the caller follows progress
                # from here instead of waiting in its request.
                self._settle(run.created)
                await self._until_gone(run, _uid(existing))
                # The cache may not have shown the old pod yet: do not hammer the API.
                await asyncio.sleep(0.2)
                continue
            except KubeError as e:
                raise _api_failure("create", e) from e
            run.uid = _uid(created)
            self._publish(run, 5, f"Pod {run.pod_name} created")
            break

    async def _create_object(self, run: _Start, resource: str, body: Object) -> Object:
        """Create, waiting out the API's 429s (as client-go does) within the start timeout."""
        for _ in range(THROTTLED_RETRIES):
            try:
                return await self.kube.create(resource, self.settings.namespace, body)
            except KubeThrottled as e:
                wait = min(max(e.retry_after, 0.1), MAX_THROTTLED_WAIT)
                self._publish(run, 2, f"The cluster asks to slow down: retrying in {wait:g} s")
                await asyncio.sleep(wait)
        return await self.kube.create(resource, self.settings.namespace, body)

    async def _existing(self, run: _Start) -> Object | None:
        try:
            pod = await self.kube.get("pods", self.settings.namespace, run.pod_name)
        except NotFound:
            return None
        except KubeError as e:
            raise _api_failure("read", e) from e
        if pod_key(pod) != run.user:
            raise SpawnFailed("error", f"the pod name {run.pod_name} is taken by someone else")
        return pod

    async def _until_gone(self, run: _Start, uid: str) -> None:
        """Wait for the pod `uid` to leave the informer's cache (bounded by the start timeout)."""
        while True:
            pod = self.pods.cache.get(run.pod_name)
            if pod is None or _uid(pod) != uid:
                return
            # The cache may lag behind the API; a wake-up or a second later, look again.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await run.changed.wait()
            run.changed.clear()

    async def _until_ready(self, run: _Start) -> None:
        seen = False
        while True:
            # A pod of the same name with another uid is an older one not yet gone
            # from the cache, or a newer one someone else made after ours went.
            pod = self.pods.cache.get(run.pod_name)
            if pod is not None and _uid(pod) == run.uid:
                if not seen and self.events is None:
                    self._publish(run, 10, "Waiting for the pod to be scheduled")
                seen = True
                if is_ready(pod):
                    return
                failure = start_failure(
                    pod, wait_unschedulable=self.settings.unschedulable == "wait"
                )
                if failure is not None:
                    raise failure
                if is_deleting(pod):
                    raise SpawnFailed("deleted", "the server was stopped before it was ready")
            if run.gone:
                raise SpawnFailed("deleted", "the server was deleted before it was ready")
            await run.changed.wait()
            run.changed.clear()

    async def _timed_out(self, run: _Start) -> None:
        """Start timeout: a last fresh look, then give up and delete the pod."""
        try:
            pod = await self.kube.get("pods", self.settings.namespace, run.pod_name)
        except NotFound:
            pod = None
        except KubeError as e:
            # The API is in trouble: say so, but never delete a pod we cannot see.
            raise _api_failure("read", e) from e
        if pod is not None and _uid(pod) == run.uid and is_ready(pod):
            return  # the watch lagged; it is running
        seconds = f"{self.settings.start_timeout:g}"
        raise SpawnFailed("timeout", f"the server did not become ready within {seconds} seconds")

    def _fail(self, run: _Start, failure: SpawnFailed) -> None:
        self._settle(run.created, failure)
        self._failures[run.user] = (failure, run.uid or "")
        self._failures.move_to_end(run.user)
        while len(self._failures) > MAX_FAILURES_KEPT:
            self._failures.popitem(last=False)
        self.progress.publish(
            run.user, ProgressEvent(100, f"Spawn failed: {failure.message}", failed=True)
        )
        self._observe("failed", run.user, time.monotonic() - run.began, failure.reason)
        log.info("start of %s failed: %s (%s)", run.pod_name, failure.message, failure.reason)

    async def _delete_failed(self, run: _Start) -> None:
        """A pod that cannot serve holds resources for nothing: delete it (only that one)."""
        pod = self.pods.cache.get(run.pod_name)
        if pod is not None and _uid(pod) != run.uid:
            return  # not the pod that failed any more
        try:
            await self.kube.delete(
                "pods", self.settings.namespace, run.pod_name, grace_seconds=DELETE_FAILED_GRACE
            )
        except NotFound:
            pass
        except KubeError as e:
            log.warning("could not delete the failed pod %s: %s", run.pod_name, e)

    # -- what the informers tell us ----------------------------------------------------

    async def next_change(self, user: str) -> None:
        """Returns when the pod watch next sees a change of `user`'s pod (from any replica)."""
        changed = self._pod_changes.get(user)
        if changed is None:
            changed = self._pod_changes[user] = asyncio.Event()
        await changed.wait()

    def _on_pod(self, event_type: str, pod: Object, old: Object | None) -> None:
        user = pod_key(pod)
        self._index_named(event_type, pod, user)
        if user is not None and (changed := self._pod_changes.pop(user, None)) is not None:
            changed.set()
        run = self._starts.get(user) if user is not None else None
        if run is None or (pod.get("metadata") or {}).get("name") != run.pod_name:
            return
        if event_type == "DELETED" and run.uid and _uid(pod) == run.uid:
            run.gone = True
        run.changed.set()

    def _index_named(self, event_type: str, pod: Object, key: str | None) -> None:
        if key is None:
            return
        owner, server = names.split_key(key)
        if not server:
            return
        name = str((pod.get("metadata") or {}).get("name") or "")
        if event_type == "DELETED":
            held = self._named_pods.get(owner, {})
            held.pop(name, None)
            if not held:
                self._named_pods.pop(owner, None)
        else:
            self._named_pods.setdefault(owner, {})[name] = server

    def _on_event(self, event_type: str, event: Object, old: Object | None) -> None:
        if event_type == "DELETED":
            return
        run = self._by_pod.get(str((event.get("involvedObject") or {}).get("name")))
        if run is not None:
            self._publish_event(run, event)

    def _replay_events(self, run: _Start) -> None:
        """Events the events informer already holds about a pod this start joined.

        A scan of the (bounded) Events cache, only when joining: a pod this
        start created has no Events from before its own start.
        """
        if self.events is None:
            return
        for event in list(self.events.cache.values()):
            if (event.get("involvedObject") or {}).get("name") == run.pod_name:
                self._publish_event(run, event)

    def _publish_event(self, run: _Start, event: Object) -> None:
        involved_uid = (event.get("involvedObject") or {}).get("uid")
        if run.uid is None or (involved_uid and involved_uid != run.uid):
            return  # about an earlier pod of the same name, or before ours exists
        step = progress_message(event)
        if step is None:
            return
        detail = event_detail(event)
        # The raw text is for the log (warnings at info) and admins, not the spawn page.
        level = logging.INFO if event.get("type") == "Warning" else logging.DEBUG
        log.log(
            level,
            "start of %s: %s",
            run.pod_name,
            detail,
            extra={"user": run.user, "pod": run.pod_name, "event_reason": event.get("reason")},
        )
        self.progress.publish(run.user, ProgressEvent(step[0], step[1], detail=detail))

    def _publish(self, run: _Start, percent: int, message: str) -> None:
        self.progress.publish(run.user, ProgressEvent(percent, message))

    # -- small helpers -----------------------------------------------------------------

    def _pod(self, user: str) -> Object | None:
        pod = self.pods.cache.get(names.pod_name(user, self.settings.pod_name_prefix))
        return pod if pod is not None and pod_key(pod) == user else None

    def _settle(self, future: asyncio.Future[None], error: SpawnFailed | None = None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def _observe(self, outcome: str, user: str, seconds: float, reason: str) -> None:
        if self._observer is None:
            return
        try:
            self._observer(outcome, user, seconds, reason)
        except Exception:
            log.exception("spawn observer failed on %s", outcome)


def _ready_since(pod: Object) -> datetime.datetime | None:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return _parse_time(condition.get("lastTransitionTime"))
    return None


def _api_failure(action: str, error: KubeError) -> SpawnFailed:
    """An API fault during a start, in words: what could not be done and what the API said."""
    said = error.message or error.reason or "no answer"
    code = f" ({error.status})" if error.status else ""
    return SpawnFailed(
        "api_error", f"the Kubernetes API could not {action} the server{code}: {said}"
    )
