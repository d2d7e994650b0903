"""Pod lifecycle Events written to the store, aggregated like the kubelet's recorder.

A repeat of the same (object, type, reason, message) bumps count and
lastTimestamp on the existing Event instead of creating a new one. Kubelet
events carry firstTimestamp/lastTimestamp and `eventTime: null`; scheduler
events carry eventTime and null timestamps, as on a real cluster. Never
touches processes; never raises into the pod lifecycle (an Event is advice).
"""

from __future__ import annotations

import datetime
import itertools
import logging
from typing import Any

from kubesim.contracts import ObjectStore
from kubesim.kubelet.status import micro_time, rfc3339

Obj = dict[str, Any]
log = logging.getLogger(__name__)

KUBELET = "kubelet"
SCHEDULER = "default-scheduler"


class EventRecorder:
    """Records Events about pods; one per cluster, shared by every pod."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._serial = itertools.count(1)
        # (namespace, uid, type, reason, message) -> name of the Event holding the count
        self._seen: dict[tuple[str, str, str, str, str], str] = {}

    def record(
        self,
        pod: Obj,
        reason: str,
        message: str,
        *,
        warning: bool = False,
        container: str | None = None,
        component: str = KUBELET,
        host: str | None = None,
    ) -> None:
        metadata = pod["metadata"]
        namespace = metadata.get("namespace", "default")
        kind = "Warning" if warning else "Normal"
        key = (namespace, metadata.get("uid", ""), kind, reason, message)
        now = datetime.datetime.now(datetime.UTC)
        try:
            if key in self._seen and self._bump(namespace, self._seen[key], now):
                return
            event = self._new_event(pod, kind, reason, message, container, component, host, now)
            self._store.create("events", namespace, event)
            self._seen[key] = event["metadata"]["name"]
        except Exception:  # an Event is advice: never break a pod over it
            log.exception("could not record event %s for pod %s", reason, metadata.get("name"))

    def forget(self, namespace: str, uid: str) -> None:
        """Drop aggregation state for a removed pod (its Events stay in the store)."""
        for key in [k for k in self._seen if k[0] == namespace and k[1] == uid]:
            del self._seen[key]

    def _bump(self, namespace: str, name: str, now: datetime.datetime) -> bool:
        event = self._store.get("events", namespace, name)
        if event is None:
            return False
        event["count"] = int(event.get("count") or 1) + 1
        if event.get("eventTime"):
            event["series"] = {"count": event["count"], "lastObservedTime": micro_time(now)}
        else:
            event["lastTimestamp"] = rfc3339(now)
        self._store.replace("events", namespace, event)
        return True

    def _new_event(
        self,
        pod: Obj,
        kind: str,
        reason: str,
        message: str,
        container: str | None,
        component: str,
        host: str | None,
        now: datetime.datetime,
    ) -> Obj:
        metadata = pod["metadata"]
        namespace = metadata.get("namespace", "default")
        stamp = int(now.timestamp() * 1e9) + next(self._serial)
        involved: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": metadata["name"],
            "namespace": namespace,
            "uid": metadata.get("uid", ""),
        }
        if metadata.get("resourceVersion"):
            involved["resourceVersion"] = metadata["resourceVersion"]
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        scheduler = component == SCHEDULER
        source: Obj = {"component": component}
        if host and not scheduler:
            source["host"] = host
        event: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{metadata['name']}.{stamp:x}", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": kind,
            "count": 1,
            "source": source,
            "firstTimestamp": None if scheduler else rfc3339(now),
            "lastTimestamp": None if scheduler else rfc3339(now),
            "eventTime": micro_time(now) if scheduler else None,
            "reportingComponent": component,
            "reportingInstance": host or "",
        }
        if scheduler:
            event["action"] = "Scheduling"
        return event
