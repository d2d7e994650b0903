"""PodRoutes: keeps the route table's pod routes in line with the user pods the informer sees.

A pod that is Ready with an address and not being deleted has a route from
its user's server path to that address, carrying the pod's token for the
edge to add upstream; a pod in any other state, or gone, has none. Each
change is decided first (what the route should be) and then applied. It
never touches routes of other sources (the CHP API's, the config's), and
never talks to Kubernetes: the informer brings the pods.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from control.kube import Object
from control.manifests import pod_server, pod_token, pod_user, server_url
from control.names import server_key
from control.pod_state import ready_target
from routes import RouteSource, RouteTable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Wanted:
    path: str
    target: str
    user: str
    data: dict[str, Any]


class PodRoutes:
    """An Informer listener: fn(event_type, pod, old) for the user pod informer."""

    def __init__(self, table: RouteTable, port: int) -> None:
        self.table = table
        self.port = port

    def __call__(self, event_type: str, pod: Object, old: Object | None) -> None:
        user = pod_user(pod)
        if user is None:
            return  # not one of ours (or its annotation was stripped): nothing to route
        server = pod_server(pod)
        # A named server's route sits one segment under its user's ("/user/ada/gpu"), so the
        # longest match sends its paths there and the rest to the default server. The
        # route's user is the owner either way: the edge authorises by it.
        path = server_url(server_key(user, server))
        wanted = None if event_type == "DELETED" else self._wanted(path, user, server, pod)
        self._apply(path, _name(pod), wanted)

    def _wanted(self, path: str, user: str, server: str, pod: Object) -> _Wanted | None:
        target = ready_target(pod, self.port)
        if target is None:
            return None
        data = {"token": pod_token(pod), "pod": _name(pod)}
        if server:
            data["server"] = server
        return _Wanted(path, target, user, data)

    def _apply(self, path: str, pod_name: str, wanted: _Wanted | None) -> None:
        current = self.table.get(path)
        if current is not None and current.source is not RouteSource.PODS:
            log.warning(
                "pod %s: %s is routed by %s; leaving that route alone",
                pod_name,
                path,
                current.source.value,
            )
            return
        if wanted is None:
            if current is not None and current.data.get("pod") == pod_name:
                self.table.remove(path)
                log.info("route %s removed (pod %s not serving)", path, pod_name)
            return
        if (
            current is not None
            and current.target.url == wanted.target
            and current.user == wanted.user
            and current.data == wanted.data
        ):
            return  # unchanged: keep the route (and its last activity) as it is
        self.table.add(
            wanted.path, wanted.target, source=RouteSource.PODS, user=wanted.user, data=wanted.data
        )
        log.info("route %s -> %s (pod %s)", path, wanted.target, pod_name)


def _name(pod: Object) -> str:
    return str((pod.get("metadata") or {}).get("name") or "")
