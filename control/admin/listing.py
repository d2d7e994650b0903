"""Builds one page of the admin listing from what the process already holds.

Fast with 50,000 users by never touching most of them: the directory's
names are already sorted, a search is one substring pass over them, and
only users with a pod (the pod watch's cache) can be anything but
"stopped", so only they get a state, start time or activity computed for
sorting. Full rows (spawner status, pod details, usage) are built for the
one page shown. Reads only: it never calls Kubernetes or changes a server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from control import names
from control.activity import pod_activity
from control.admin.quantities import parse_quantity
from control.admin.usage import Usage
from control.admin.view import AdminQuery, Listing, ServerRow
from control.kube import Object
from control.manifests import pod_server, pod_user
from control.pod_state import is_ready
from control.web.context import Hub

# The order of "state" sorting: what needs an admin's eye first.
STATE_ORDER = {"failed": 0, "starting": 1, "stopping": 2, "running": 3, "stopped": 4}


def pods_by_user(hub: Hub) -> dict[str, Object]:
    """Each user's default-server pod in the watch's cache (one pass over the pods)."""
    found = {}
    for pod in hub.spawner.pods.cache.values():
        user = pod_user(pod)
        if user is not None and not pod_server(pod):
            found[user] = pod
    return found


def named_pods(hub: Hub) -> dict[str, dict[str, Object]]:
    """user -> {server key: pod} of the named servers in the watch's cache."""
    found: dict[str, dict[str, Object]] = {}
    for pod in hub.spawner.pods.cache.values():
        user, server = pod_user(pod), pod_server(pod)
        if user is not None and server:
            found.setdefault(user, {})[names.server_key(user, server)] = pod
    return found


def last_activity(hub: Hub, user: str, pod: Object | None) -> tuple[float | None, str | None]:
    """When `user`'s server last saw traffic, and where that figure comes from."""
    if hub.activity is not None:
        seen = hub.activity.last_activity(user)
        if seen is not None:
            return seen, "edge traffic"
    if pod is not None and (noted := pod_activity(pod)) is not None:
        return noted, "pod annotation"
    return None, None


def idle_users(hub: Hub, idle_seconds: float, now: float) -> list[str]:
    """Running users whose server saw no traffic for `idle_seconds` (never: since it started)."""
    idle = []
    for user, pod in sorted(pods_by_user(hub).items()):
        if not is_ready(pod):
            continue
        seen, _ = last_activity(hub, user, pod)
        if seen is None:
            seen = hub.spawner.status(user).started
            seen = seen.timestamp() if seen is not None else None
        if seen is not None and now - seen >= idle_seconds:
            idle.append(user)
    return idle


def build_listing(
    hub: Hub, query: AdminQuery, usage: dict[str, Usage] | None, now: float
) -> Listing:
    pods = pods_by_user(hub)
    everyone = hub.users.names()
    running = sum(1 for pod in pods.values() if is_ready(pod))
    if query.running_only:
        # Only users with a Ready pod can be running: start from the pods, not the 50,000.
        candidates: list[str] = sorted(u for u, pod in pods.items() if is_ready(pod))
    else:
        candidates = everyone
    if query.search:
        candidates = [u for u in candidates if query.search in u]
    ordered = _ordered(hub, candidates, pods, query)
    first = (query.page - 1) * query.per_page
    shown = ordered[first : first + query.per_page]
    named = named_pods(hub)
    rows = tuple(
        row
        for user in shown
        for row in (
            server_row(hub, user, pods.get(user), usage),
            # Each named server (running or remembered while stopped) right under its
            # user's row, named "<user>/<server>".
            *(
                server_row(hub, key, named.get(user, {}).get(key), usage)
                for key in (names.server_key(user, s) for s in hub.named_servers(user))
            ),
        )
    )
    return Listing(
        query=query,
        rows=rows,
        matched=len(candidates),
        total_users=len(everyone),
        running=running,
        now=now,
        usage_known=usage is not None,
        open_servers=hub.admin_access,
    )


def _ordered(
    hub: Hub, candidates: list[str], pods: dict[str, Object], query: AdminQuery
) -> list[str]:
    """`candidates` (sorted by name) in the query's order; ties stay by name."""
    if query.sort == "name":
        return list(reversed(candidates)) if query.descending else candidates
    # Users without a pod are all alike (stopped, no age, no activity): they keep
    # their name order after the users with a pod, whose keys are computed here.
    with_pod = [u for u in candidates if u in pods]
    without = [u for u in candidates if u not in pods] if len(with_pod) < len(candidates) else []
    key = _sort_key(hub, pods, query)
    with_pod.sort(key=key, reverse=query.descending)
    return with_pod + without


def _sort_key(
    hub: Hub, pods: dict[str, Object], query: AdminQuery
) -> Callable[[str], tuple[float, str]]:
    if query.sort == "state":
        return lambda u: (STATE_ORDER.get(hub.spawner.status(u).state, 9), u)
    if query.sort == "activity":
        # Most recent first when ascending would be odd: "ascending" = longest idle first.
        return lambda u: (last_activity(hub, u, pods[u])[0] or 0.0, u)

    def started(user: str) -> tuple[float, str]:
        moment = hub.spawner.status(user).started
        # Age ascending = youngest first, so the latest start sorts first.
        return (-(moment.timestamp()) if moment is not None else 0.0, user)

    return started


def server_row(
    hub: Hub, user: str, pod: Object | None, usage: dict[str, Usage] | None
) -> ServerRow:
    """Everything the panel shows of one user, from the spawner and their pod."""
    status = hub.spawner.status(user)
    seen, source = last_activity(hub, user, pod)
    container = _first_container(pod)
    requests = (container.get("resources") or {}).get("requests") or {}
    used = usage.get(status.pod or "") if usage is not None and status.pod else None
    return ServerRow(
        user=user,
        state=status.state,
        pod=status.pod,
        node=_text((pod or {}).get("spec", {}).get("nodeName")),
        image=_text(container.get("image")),
        profile=status.profile,
        started=status.started.timestamp() if status.started is not None else None,
        last_activity=seen,
        activity_source=source,
        cpu_request=parse_quantity(requests.get("cpu")),
        memory_request=parse_quantity(requests.get("memory")),
        cpu_used=used.cpu if used is not None else None,
        memory_used=used.memory if used is not None else None,
        pvc=_claim(hub, user, pod),
        failure=status.failure.message if status.failure is not None else None,
    )


def _first_container(pod: Object | None) -> Object:
    containers: Iterable[Object] = ((pod or {}).get("spec") or {}).get("containers") or ()
    return next(iter(containers), {})


def _claim(hub: Hub, user: str, pod: Object | None) -> str | None:
    """The user's claim: the one the pod mounts, else the one storage would give them."""
    for volume in ((pod or {}).get("spec") or {}).get("volumes") or ():
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if isinstance(claim, str):
            return claim
    if hub.spawner.settings.storage is not None:
        return names.pvc_name(user)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
