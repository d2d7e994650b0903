"""Run the node agent until SIGINT/SIGTERM (`podgate sim --node-only --kubeconfig FILE`).

Prints one line `kubesim node agent: node NAME is Ready on URL (VERSION)`
once the Node is registered and pods can run, so scripts and tests can wait
for it. Every start failure is one `kubesim node agent: …` line on stderr
and exit status 1 (2 for a kubeconfig that cannot be used), no traceback.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from kubesim.kubelet.config import KubeletConfig, user_state_dir
from kubesim.kubelet.scheduler import NodeCapacity
from kubesim.nodeagent.agent import AgentError, NodeAgent
from kubesim.nodeagent.kubeconfig import KubeconfigError, load_kubeconfig

PREFIX = "kubesim node agent"


async def serve(agent: NodeAgent) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await agent.start()
    try:
        server = agent.server
        for name in agent.nodes:
            print(f"{PREFIX}: node {name} is Ready on {server} ({agent.version})", flush=True)
        await stop.wait()
    finally:
        await agent.stop()


def run(kubeconfig: str, context: str | None, node_name: str, data_dir: str | None) -> int:
    """Serve until SIGINT/SIGTERM; the exit status for the CLI."""
    path = Path(kubeconfig)
    try:
        load_kubeconfig(path, context)  # a bad file is a usage error, told before anything runs
    except KubeconfigError as e:
        print(f"{PREFIX}: {e}", file=sys.stderr)
        return 2
    config = KubeletConfig(
        nodes=(NodeCapacity(node_name),),
        data_dir=Path(data_dir) if data_dir else None,
        state_dir=user_state_dir(),
    )
    try:
        asyncio.run(serve(NodeAgent(path, config, context=context)))
    except AgentError as e:
        print(f"{PREFIX}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
