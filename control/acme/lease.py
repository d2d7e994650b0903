"""A coordination.k8s.io/v1 Lease used as a lock: one holder at a time, expiring if it dies.

acquire() takes the Lease when it is free, expired, or already ours; every
write carries the resourceVersion it read, so two replicas racing for it meet
at a 409 and exactly one wins (client-go's leader election does the same).
release() empties holderIdentity so the next replica need not wait out the
duration. Plain Kubernetes calls through control.kube; no timers of its own.
"""

from __future__ import annotations

import datetime
import logging

from control.errors import AlreadyExists, Conflict, NotFound
from control.kube import Kube, Object

log = logging.getLogger(__name__)

LEASES = "coordination.k8s.io/v1/leases"


def micro_time(moment: datetime.datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 with microseconds and Z."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class LeaseLock:
    """The Lease `name` in `namespace`, held as `identity` for `duration` seconds at a time."""

    def __init__(
        self, kube: Kube, namespace: str, name: str, identity: str, duration: int = 300
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration

    async def acquire(self) -> bool:
        """Whether this replica holds the Lease now (a lost race is False, never an error)."""
        now = datetime.datetime.now(datetime.UTC)
        try:
            lease = await self.kube.get(LEASES, self.namespace, self.name)
        except NotFound:
            return await self._create(now)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        seconds = spec.get("leaseDurationSeconds") or self.duration
        held = holder and holder != self.identity and renewed is not None
        if held and now < renewed + datetime.timedelta(seconds=seconds):  # type: ignore[operator]
            return False  # another replica holds it and is not overdue
        transitions = int(spec.get("leaseTransitions") or 0) + (holder != self.identity)
        patch: Object = {
            "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration,
                "acquireTime": micro_time(now),
                "renewTime": micro_time(now),
                "leaseTransitions": transitions,
            },
        }
        try:
            await self.kube.patch(LEASES, self.namespace, self.name, patch)
        except (Conflict, NotFound):
            return False  # someone else wrote it first
        return True

    async def release(self) -> None:
        """Let go if still ours; a failure only means the next holder waits the duration out."""
        try:
            lease = await self.kube.get(LEASES, self.namespace, self.name)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            patch: Object = {
                "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": {"holderIdentity": None},
            }
            await self.kube.patch(LEASES, self.namespace, self.name, patch)
        except Exception as e:
            log.info("releasing the ACME lease %s failed (it expires by itself): %s", self.name, e)

    async def _create(self, now: datetime.datetime) -> bool:
        body: Object = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration,
                "acquireTime": micro_time(now),
                "renewTime": micro_time(now),
                "leaseTransitions": 0,
            },
        }
        try:
            await self.kube.create(LEASES, self.namespace, body)
        except AlreadyExists:
            return False
        return True
