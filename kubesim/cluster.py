"""SimCluster: the object store, the API server and the simulated kubelet as one unit.

This is what `podgate run` embeds and tests start: `await start()` binds
host:port (0 picks a free port) in well under a second, `url`, `token` and
`ca_file` tell clients how to connect, `write_kubeconfig()` hands them a
kubeconfig, `await stop()` stops the kubelet's processes and the server.
It is a test double for Kubernetes, never a replacement for it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from aiohttp import web

from kubesim.apiserver import build_app
from kubesim.context import ApiContext, Identity
from kubesim.contracts import Kubelet, PodLogs
from kubesim.kubeconfig import kubeconfig_document, write_kubeconfig
from kubesim.store import Store
from kubesim.tls import ServerCertificate, make_certificate
from kubesim.watch import WatchHub

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public")


class SimCluster:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        kubelet: Kubelet | Literal["sim"] | None = "sim",
        tls: bool = False,
        token: str | None = None,
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        history_size: int = 20_000,
        bookmark_interval: float = 5.0,
    ) -> None:
        """kubelet: "sim" for kubesim's own kubelet, None for an API server alone."""
        self.host = host
        self._port = port
        self._kubelet_choice = kubelet
        self.kubelet: Kubelet | None = None
        self.tls = tls
        self.token = token or secrets.token_urlsafe(24)
        # A second identity that may only get, list and watch (403 otherwise).
        self.readonly_token = secrets.token_urlsafe(24)
        self._namespaces = tuple(namespaces)
        self._history_size = history_size
        self._bookmark_interval = bookmark_interval
        self._runner: web.AppRunner | None = None
        self._tmpdir: Path | None = None
        self._certificate: ServerCertificate | None = None
        self._hub: WatchHub | None = None
        self.url = ""

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate clients must trust (None without TLS)."""
        return self._certificate.ca_file if self._certificate else None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1]) if self.url else self._port

    def _make_kubelet(self) -> Kubelet | None:
        if self._kubelet_choice == "sim":
            from kubesim.kubelet import SimKubelet  # the kubelet package is optional here

            return SimKubelet()
        return self._kubelet_choice

    async def start(self) -> None:
        store = Store(history_size=self._history_size)
        for name in self._namespaces:
            store.insert(
                "namespaces", "", {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": name,
                                                "labels": {"kubernetes.io/metadata.name": name}},
                                   "spec": {"finalizers": ["kubernetes"]},
                                   "status": {"phase": "Active"}},
            )  # fmt: skip
        self.kubelet = self._make_kubelet()
        self._hub = WatchHub(store, self._bookmark_interval)
        self._hub.start()
        logs: PodLogs | None = getattr(self.kubelet, "log_source", None)
        context = ApiContext(
            store=store,
            hub=self._hub,
            tokens={
                self.token: Identity("kubesim-admin"),
                self.readonly_token: Identity("kubesim-viewer", read_only=True),
            },
            pod_usage=self.kubelet.usage_source if self.kubelet else None,
            pod_logs=logs,
            set_kubelet_paused=self.kubelet.set_paused if self.kubelet else None,
        )
        ssl_context = None
        if self.tls:
            self._tmpdir = Path(tempfile.mkdtemp(prefix="kubesim-tls-"))
            self._certificate = await asyncio.to_thread(make_certificate, self._tmpdir, self.host)
            ssl_context = self._certificate.server_context()
        # handler_cancellation ends a watch handler as soon as its client leaves.
        self._runner = web.AppRunner(build_app(context), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port, ssl_context=ssl_context)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"  # a wildcard bind is reached over loopback here
        scheme = "https" if self.tls else "http"
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{shown}:{port}"
        if self.kubelet is not None:
            await self.kubelet.start(store)

    def kubeconfig(self, namespace: str = "default", read_only: bool = False) -> dict[str, object]:
        ca = self._certificate.ca_pem if self._certificate else None
        token = self.readonly_token if read_only else self.token
        return kubeconfig_document(self.url, token, ca, namespace)

    def write_kubeconfig(
        self, path: str | os.PathLike[str], namespace: str = "default", read_only: bool = False
    ) -> Path:
        return write_kubeconfig(path, self.kubeconfig(namespace, read_only))

    async def stop(self) -> None:
        if self.kubelet is not None:
            await self.kubelet.stop()
        if self._hub is not None:
            self._hub.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
