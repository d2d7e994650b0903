"""The node agent's informer resumes its watch, and lists again after 410 Gone.

Against kubesim's API server, whose fault injection can expire a watch on
demand: the real kube-apiserver serves watches from a cache that etcd
compaction does not shorten, so it gives no 410 in bounded time. The real
server's side (list, watch, bookmarks) is tests/realkube/test_node_agent.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from kubesim.cluster import SimCluster
from kubesim.nodeagent.client import ApiClient
from kubesim.nodeagent.informer import Informer
from kubesim.nodeagent.kubeconfig import load_kubeconfig

COLLECTION = "/api/v1/namespaces/default/configmaps"


async def until(check: Any, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within:.0f}s: {what}"
        await asyncio.sleep(0.05)


async def set_faults(cluster: SimCluster, settings: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {cluster.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.put(
            f"{cluster.url}/kubesim/faults", json=settings, headers=headers, ssl=False
        ) as reply,
    ):
        assert reply.status == 200, await reply.text()


async def test_a_watch_expired_with_410_lists_again_and_misses_nothing(
    make_cluster: Any, tmp_path: Path
) -> None:
    cluster = await make_cluster(kubelet=None, tls=True)
    client = ApiClient(load_kubeconfig(cluster.write_kubeconfig(tmp_path / "kubeconfig")))
    informer = Informer(client, COLLECTION)
    seen: list[tuple[str, str]] = []
    informer.subscribe(lambda kind, obj: seen.append((kind, obj["metadata"]["name"])))
    task = asyncio.create_task(informer.run())
    try:
        await informer.list_once()
        await client.request("POST", COLLECTION, body={"metadata": {"name": "first"}})
        await until(lambda: ("ADDED", "first") in seen, "the watch to see the first object")
        # The open watch is cut; its resume is told 410. Meanwhile one object
        # goes and one comes: the new list must tell both.
        await set_faults(cluster, {"drop_watches": True, "expire_next_watch": True})
        await client.request("DELETE", f"{COLLECTION}/first")
        await client.request("POST", COLLECTION, body={"metadata": {"name": "second"}})
        await until(lambda: ("ADDED", "second") in seen and ("DELETED", "first") in seen,
                    "the changes made while the watch was gone")  # fmt: skip
        await until(lambda: informer.relists >= 1, "a new list after the 410")
        assert set(informer.cache) == {("default", "second")}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
