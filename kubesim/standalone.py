"""Run kubesim on its own until SIGINT/SIGTERM (`podgate sim`, `python -m kubesim`).

Prints one line `kubesim listening on URL` once it serves, so scripts and
tests can wait for it, and writes the kubeconfig before that line.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from kubesim.cluster import SimCluster
from kubesim.contracts import Kubelet


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 hosts in brackets); raises ValueError on anything else."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen wants HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


async def serve(listen: str, kubeconfig: str | None, tls: bool, kubelet: bool) -> None:
    host, port = parse_listen(listen)
    cluster = SimCluster(host, port, tls=tls, kubelet=_kubelet() if kubelet else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await cluster.start()
    try:
        if kubeconfig:
            cluster.write_kubeconfig(kubeconfig)
        print(f"kubesim listening on {cluster.url}", flush=True)
        await stop.wait()
    finally:
        await cluster.stop()


def _kubelet() -> Kubelet:
    # The kubelet package is optional for the API server alone.
    from kubesim.kubelet import KubeletConfig, SimKubelet
    from kubesim.kubelet.config import user_state_dir

    # A kubesim killed earlier left its pods' processes running: end them at start.
    return SimKubelet(KubeletConfig(state_dir=user_state_dir()))


def run(listen: str, kubeconfig: str | None, tls: bool = False, kubelet: bool = True) -> int:
    """Serve until SIGINT/SIGTERM; the exit status for the CLI."""
    try:
        asyncio.run(serve(listen, kubeconfig, tls, kubelet))
    except ValueError as e:
        print(f"kubesim: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"kubesim: cannot listen on {listen}: {e}", file=sys.stderr)
        return 1
    return 0
