"""The two API servers the Kubernetes suites run against, as the tests reach them.

kubesim is started by each test (in-process or as `podgate sim`); the real
control plane (tests/realkube) is one per session, shared, so each test that
uses it starts from clean namespaces: `reset_namespace` deletes what podgate
and its tests make (pods at once, claims, ConfigMaps, Services, Events) and
waits, bounded, until they are gone. `RealServer` hands out the admin
kubeconfig in the shape SimCluster does; `KubeRest` is plain REST with a
bearer token (and the server's CA where there is TLS), as a script would call
either server.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from kubesim.kubeconfig import kubeconfig_document, write_kubeconfig

# What a reset deletes, per namespace, in this order (claims after the pods using them).
RESET_KINDS = ("pods", "persistentvolumeclaims", "configmaps", "services", "events")
# What the control plane keeps or writes in a namespace itself, not ours to delete
# nor to wait for: the controller-manager's CA bundle in every namespace, the
# apiserver's own Service in default (made anew within seconds when deleted), and
# the Events about Nodes, which land in default while the node agent runs.
NOT_OURS = {
    "configmaps": "metadata.name!=kube-root-ca.crt",
    "services": "metadata.name!=kubernetes",
    "events": "involvedObject.kind!=Node",
}
RESET_SECONDS = 60.0
NAMESPACE_SECONDS = 60.0


class KubeRest:
    """Plain REST calls with a bearer token; answers are (status, JSON body).

    `ca_file` is the CA to trust for an https server (the real one); kubesim's
    processes in these tests serve plain HTTP.
    """

    def __init__(self, url: str, token: str, ca_file: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self._ssl: ssl.SSLContext | None = (
            ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
        )
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=10),
        )

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> KubeRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def ssl(self) -> ssl.SSLContext | None:
        return self._ssl

    async def call(
        self, method: str, path: str, body: Any = None, **params: str
    ) -> tuple[int, dict[str, Any]]:
        async with self._session.request(
            method, self.url + path, json=body, params=params or None, ssl=self._ssl
        ) as response:
            return response.status, await response.json(content_type=None)

    async def log(self, namespace: str, pod: str) -> tuple[int, str]:
        """(status, text) of the pod's log."""
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        async with self._session.get(self.url + path, ssl=self._ssl) as response:
            return response.status, await response.text()

    async def pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        status, body = await self.call(
            "GET", f"/api/v1/namespaces/{namespace}/pods", labelSelector=label_selector
        )
        assert status == 200, body
        return list(body["items"])

    async def set_faults(self, faults: Mapping[str, Any]) -> None:
        """kubesim only: its /kubesim/faults (the real server has no such thing)."""
        status, body = await self.call("PUT", "/kubesim/faults", dict(faults))
        assert status == 200, body


@dataclass
class RealServer:
    """The session's real kube-apiserver as a test reaches it: admin token, TLS with its CA.

    `agent` is the node agent running its pods (set by the `real_server` fixture).
    """

    url: str
    token: str
    ca_file: Path
    agent: Any = None
    tls: bool = True

    @property
    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()

    def kubeconfig(self, namespace: str = "default") -> dict[str, object]:
        """An admin kubeconfig document for `namespace` (the shape SimCluster.kubeconfig has)."""
        return kubeconfig_document(self.url, self.token, self.ca_pem, namespace)

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str = "default") -> Path:
        return write_kubeconfig(path, self.kubeconfig(namespace))

    def rest(self) -> KubeRest:
        return KubeRest(self.url, self.token, self.ca_file)


@dataclass
class PodgateCluster:
    """What a podgate started by make_podgate runs against.

    settings: merged into its config ({} keeps the embedded kubesim; for the
    real server, `cluster: {kind: kube, kubeconfig: ...}`); agent: the real
    server's node agent, else None.
    """

    settings: dict[str, Any] = field(default_factory=dict)
    agent: Any = None

    def set_paused(self, podgate: Any, paused: bool) -> None:
        """Hold (or let go) the kubelet running `podgate`'s pods: pods stay as they are."""
        if self.agent is not None:
            self.agent.set_paused(paused)
        else:
            podgate.cluster.kubelet.set_paused(paused)


def pause_nodes(cluster: Any, paused: bool) -> None:
    """Hold (or let go) the kubelet of a SimCluster or a RealServer: pods stay as they are."""
    if isinstance(cluster, RealServer):
        cluster.agent.set_paused(paused)
    else:
        cluster.kubelet.set_paused(paused)


async def ensure_namespace(rest: KubeRest, name: str, seconds: float = NAMESPACE_SECONDS) -> None:
    """`name` exists and is ready for pods (its default ServiceAccount made), bounded.

    Until the controller-manager makes that account, the ServiceAccount
    admission plugin refuses every pod in the namespace.
    """
    status, body = await rest.call("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status in (201, 409), body
    account = f"/api/v1/namespaces/{name}/serviceaccounts/default"
    deadline = time.monotonic() + seconds
    while (await rest.call("GET", account))[0] != 200:
        assert time.monotonic() < deadline, f"namespace {name} has no default ServiceAccount"
        await asyncio.sleep(0.1)


async def _names(rest: KubeRest, namespace: str, kind: str) -> list[str]:
    params = {"fieldSelector": NOT_OURS[kind]} if kind in NOT_OURS else {}
    status, body = await rest.call("GET", f"/api/v1/namespaces/{namespace}/{kind}", **params)
    assert status == 200, body
    return [item["metadata"]["name"] for item in body["items"]]


async def reset_namespace(rest: KubeRest, namespace: str, seconds: float = RESET_SECONDS) -> None:
    """Delete what a test made in `namespace` and wait (bounded) until it is gone.

    Pods go with grace 0 (removed from the API at once; the node agent ends
    their processes); claims wait for their protection finalizer, which the
    controller-manager lifts once no pod uses them.
    """
    for kind in RESET_KINDS:
        params = {"gracePeriodSeconds": "0"} if kind == "pods" else {}
        if kind in NOT_OURS:
            params["fieldSelector"] = NOT_OURS[kind]
        status, body = await rest.call("DELETE", f"/api/v1/namespaces/{namespace}/{kind}", **params)
        assert status == 200, (kind, body)
    deadline = time.monotonic() + seconds
    for kind in RESET_KINDS:
        while left := await _names(rest, namespace, kind):
            assert time.monotonic() < deadline, f"{kind} in {namespace} not gone: {left}"
            await asyncio.sleep(0.1)


async def until_schedulable(rest: KubeRest, node: str, seconds: float = 60.0) -> None:
    """Wait (bounded) until `node` is Ready and carries no NoSchedule or NoExecute taint.

    A Node is created with the not-ready taint (the TaintNodesByCondition
    admission plugin); the node lifecycle controller lifts it once it sees
    the node Ready, on its next pass.
    """
    deadline = time.monotonic() + seconds
    while True:
        status, body = await rest.call("GET", f"/api/v1/nodes/{node}")
        if status == 200:
            taints = [
                t for t in body["spec"].get("taints") or () if t["effect"] != "PreferNoSchedule"
            ]
            ready = any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in body.get("status", {}).get("conditions") or ()
            )
            if ready and not taints:
                return
        assert time.monotonic() < deadline, f"node {node} not schedulable: {status} {body}"
        await asyncio.sleep(0.2)


def delete_cluster_objects(
    url: str, token: str, ca_file: Path, paths: list[str], seconds: float = RESET_SECONDS
) -> None:
    """Delete cluster-scoped objects (or whole collections) and wait until they are gone.

    Synchronous (urllib), for module and session teardown outside any event loop.
    """
    context = ssl.create_default_context(cafile=str(ca_file))
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )

    def call(method: str, path: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            url + path, method=method, headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with opener.open(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    deadline = time.monotonic() + seconds
    for path in paths:
        status, body = call("DELETE", path)
        assert status in (200, 202, 404), (path, body)
        while True:
            status, body = call("GET", path)
            if status == 404 or (status == 200 and body.get("items") == []):
                break
            assert time.monotonic() < deadline, f"{path} not gone: {body}"
            time.sleep(0.2)
