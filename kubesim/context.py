"""What every API handler shares: store, watch hub, faults, identities, kubelet hooks.

`ApiContext.admit` is the one place where a call is checked against the
caller's rights (403) and where injected latency and errors happen. It must
never read request bodies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from kubesim.contracts import PodLogs, PodUsage
from kubesim.faults import Faults
from kubesim.resources import READ, ResourceType
from kubesim.status import forbidden
from kubesim.store import Store
from kubesim.watch import WatchHub


@dataclass(frozen=True)
class Identity:
    user: str
    read_only: bool = False


@dataclass
class ApiContext:
    store: Store
    hub: WatchHub
    tokens: dict[str, Identity]
    faults: Faults = field(default_factory=Faults)
    pod_usage: PodUsage | None = None
    pod_logs: PodLogs | None = None
    set_kubelet_paused: Callable[[bool], None] | None = None

    async def admit(
        self, request: web.Request, verb: str, rt: ResourceType, namespace: str | None
    ) -> None:
        identity: Identity = request[IDENTITY]
        if identity.read_only and verb not in READ:
            raise forbidden(identity.user, verb, rt.resource, namespace, rt.group)
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        if (error := self.faults.error_for(verb)) is not None:
            raise error


API_CONTEXT = web.AppKey("api_context", ApiContext)
IDENTITY = web.RequestKey("kubesim.identity", Identity)
