"""ActivityTracker: when each user's server last saw traffic, across replicas.

The edge bumps `Route.last_activity` on every proxied request and on
WebSocket traffic; that is the local view. A route's value starts at its
creation time, and creation is not traffic (a podgate that restarts makes
every route afresh), so each route's starting value is kept as a baseline
and only a later value counts. One named task writes the local view, every
`interval` seconds, as a JSON merge patch of the pod annotation
`podgate.io/last-activity` (ISO 8601, Z) on the pods whose annotation is
older, so the culler and the other replicas see it through their pod watch.

It never patches per request, never writes an activity that is not newer
than the annotation, and never lets an API failure end its task: a failed
write is logged once per streak and tried again the next round.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

from control import names
from control.errors import KubeError, NotFound
from control.informer import Informer
from control.kube import Kube, Object
from control.manifests import pod_key, server_url
from control.tasks import BackgroundTask, rounds
from routes import Route, RouteSource, RouteTable

log = logging.getLogger(__name__)

ACTIVITY_ANNOTATION = "podgate.io/last-activity"
# Activity newer than the annotation by less than this is not worth a write:
# the culler works in minutes, and the edge bumps WebSocket activity once a second.
PRECISION = 1.0


def format_activity(seconds: float) -> str:
    """ "2024-05-01T12:00:00.123Z" from epoch seconds."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_activity(value: object) -> float | None:
    """Epoch seconds from an ISO 8601 annotation value; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def pod_activity(pod: Object) -> float | None:
    """The last activity a pod's annotation records (any replica wrote it), if any."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return parse_activity(annotations.get(ACTIVITY_ANNOTATION))


class ActivityTracker:
    """Hub.activity: last_activity(key) = the newer of local traffic and the pod annotation.

    Every server is tracked by its key (control.names.server_key): the user name
    for their default server, "user/server" for a named one.
    """

    def __init__(
        self,
        table: RouteTable,
        pods: Informer,
        kube: Kube,
        *,
        namespace: str,
        pod_name_prefix: str = "jupyter-",
        interval: float = 60.0,
        concurrency: int = 8,
    ) -> None:
        self.table = table
        self.pods = pods
        self.kube = kube
        self.namespace = namespace
        self.pod_name_prefix = pod_name_prefix
        self.interval = interval
        self.concurrency = concurrency
        self._baselines: dict[str, tuple[Route, float]] = {}  # user -> (route, value at creation)
        self._traffic: dict[str, float] = {}  # user -> last traffic seen on their route
        self._written: dict[str, float] = {}  # user -> last value this replica patched
        self._task = BackgroundTask(
            "activity-writer", lambda: rounds(lambda: self.interval, self.write_round, log)
        )
        self._trouble = ""  # the write failure last logged; "" while writes succeed
        # Added after the route listener, so a route the pod event just made is seen
        # before any request can reach it: its creation time becomes the baseline.
        pods.add_listener(self._on_pod)

    # -- reading -----------------------------------------------------------------------

    def last_activity(self, user: str) -> float | None:
        """When `user`'s server last saw traffic here or at any replica (epoch seconds)."""
        local = self._local(user)
        pod = self._pod(user)
        shared = pod_activity(pod) if pod is not None else None
        known = [t for t in (local, shared) if t is not None]
        return max(known) if known else None

    def active_users(self, since: float) -> int:
        """How many users' servers saw traffic at or after `since` (epoch seconds)."""
        keys = {key for key in map(pod_key, self.pods.cache.values()) if key is not None}
        keys.update(self._traffic)
        active = set()
        for key in keys:
            seen = self.last_activity(key)
            if seen is not None and seen >= since:
                active.add(names.split_key(key)[0])
        return len(active)

    def _local(self, user: str) -> float | None:
        route = self.table.get(server_url(user))
        if route is not None and route.source is RouteSource.PODS and _route_key(route) == user:
            known = self._baselines.get(user)
            if known is None or known[0] is not route:
                # First sight of this route: what it holds may be its creation time.
                self._baselines[user] = (route, route.last_activity)
            elif route.last_activity > known[1]:
                self._traffic[user] = max(self._traffic.get(user, 0.0), route.last_activity)
        return self._traffic.get(user)

    def _pod(self, user: str) -> Object | None:
        pod = self.pods.cache.get(names.pod_name(user, self.pod_name_prefix))
        return pod if pod is not None and pod_key(pod) == user else None

    def _on_pod(self, event_type: str, pod: Object, old: Object | None) -> None:
        user = pod_key(pod)
        if user is None:
            return
        if event_type == "DELETED":
            # The next server of this user starts with no activity of its own.
            self._baselines.pop(user, None)
            self._traffic.pop(user, None)
            self._written.pop(user, None)
            return
        self._local(user)

    # -- writing -----------------------------------------------------------------------

    def due_writes(self) -> list[tuple[str, str, float]]:
        """(user, pod name, activity) for each pod whose annotation is behind local traffic."""
        due = []
        for route in self.table:
            user = _route_key(route)
            if route.source is not RouteSource.PODS or user is None:
                continue
            local = self._local(user)
            pod = self._pod(user)
            if local is None or pod is None:
                continue
            noted = max(pod_activity(pod) or 0.0, self._written.get(user, 0.0))
            if local - noted >= PRECISION:
                due.append((user, str(pod["metadata"]["name"]), local))
        return due

    async def write_round(self) -> int:
        """Write every annotation that is behind; how many writes failed."""
        due = self.due_writes()
        if not due:
            return 0
        limit = asyncio.Semaphore(self.concurrency)
        results = await asyncio.gather(*(self._write(limit, *item) for item in due))
        errors = [e for e in results if e is not None]
        if errors:
            trouble = f"{type(errors[0]).__name__}: {errors[0]}"
            if trouble != self._trouble:
                log.warning(
                    "activity: %d of %d annotation writes failed (%s); retrying every %g s",
                    len(errors),
                    len(due),
                    trouble,
                    self.interval,
                )
            self._trouble = trouble
        elif self._trouble:
            log.info("activity: annotation writes succeed again after %s", self._trouble)
            self._trouble = ""
        return len(errors)

    async def _write(
        self, limit: asyncio.Semaphore, user: str, pod_name: str, when: float
    ) -> KubeError | None:
        patch = {"metadata": {"annotations": {ACTIVITY_ANNOTATION: format_activity(when)}}}
        async with limit:
            try:
                await self.kube.patch("pods", self.namespace, pod_name, patch)
            except NotFound:
                return None  # stopped meanwhile: nothing left to record it on
            except KubeError as e:
                return e
        self._written[user] = max(self._written.get(user, 0.0), when)
        return None

    async def report(self, user: str, when: float) -> None:
        """Activity a server reported itself (jupyterhub-singleuser's POST to the hub API).

        Counted like the edge's traffic and written to the pod annotation at
        once (a server reports every few minutes at most), so the culler and
        every replica see it now. NotFound: the server is gone, nothing to
        record it on; KubeError otherwise (the caller answers 503).
        """
        pod = self._pod(user)
        if pod is None:
            raise NotFound(404, "NotFound", f"{user!r} has no server to record activity on")
        self._traffic[user] = max(self._traffic.get(user, 0.0), when)
        noted = max(pod_activity(pod) or 0.0, self._written.get(user, 0.0))
        if when - noted < PRECISION:
            return
        error = await self._write(asyncio.Semaphore(1), user, str(pod["metadata"]["name"]), when)
        if error is not None:
            raise error

    # -- the task ----------------------------------------------------------------------

    async def start(self) -> None:
        await self._task.start()

    async def stop(self) -> None:
        """End the task; no last write, so shutting down touches no pod."""
        await self._task.stop()


def _route_key(route: Route) -> str | None:
    """The server key a pod route serves (control.route_sync puts a named server's name in data)."""
    if route.user is None:
        return None
    server = route.data.get("server")
    return names.server_key(route.user, server if isinstance(server, str) else "")
