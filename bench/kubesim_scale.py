"""Measure kubesim with 10,000 pod objects: create, list, chunked list, watch.

Runs the simulator as a separate process (`python -m kubesim --no-kubelet`)
and drives it over HTTP with aiohttp, so the figures include the wire
format. Usage: python bench/kubesim_scale.py [--pods 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml


def pod(i: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"jupyter-user{i:05d}",
                     "labels": {"app": "jupyterhub", "component": "singleuser-server",
                                "shard": str(i % 100)}},
        "spec": {"containers": [{"name": "notebook", "image": "python:3.11",
                                 "command": ["true"],
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    }  # fmt: skip


async def create_all(http: aiohttp.ClientSession, url: str, count: int) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            async with http.post(url, json=pod(i)) as response:
                assert response.status == 201, await response.text()

    await asyncio.gather(*(worker() for _ in range(32)))


async def watch_count(http: aiohttp.ClientSession, url: str, expected: int) -> None:
    seen = 0
    async with http.get(url) as response:
        async for _line in response.content:
            seen += 1
            if seen >= expected:
                return
    raise AssertionError(f"watch ended after {seen} of {expected} events")


async def timed(label: str, coro: Any) -> float:
    started = time.perf_counter()
    await coro
    elapsed = time.perf_counter() - started
    print(f"{label:<48} {elapsed * 1000:9.1f} ms", flush=True)
    return elapsed


async def main(count: int) -> int:
    with tempfile.TemporaryDirectory(prefix="kubesim-bench-") as workdir:
        return await measure(count, Path(workdir) / "kc")


async def measure(count: int, kubeconfig: Path) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubesim", "--listen", "127.0.0.1:0",
        "--kubeconfig", str(kubeconfig), "--no-kubelet",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        await asyncio.wait_for(process.stdout.readline(), 10)
        document = yaml.safe_load(await asyncio.to_thread(kubeconfig.read_text))
        server = document["clusters"][0]["cluster"]["server"]
        token = document["users"][0]["user"]["token"]
        pods = f"{server}/api/v1/namespaces/default/pods"
        headers = {"Authorization": f"Bearer {token}"}
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(headers=headers, connector=connector) as http:
            await timed(f"create {count} pods (32 concurrent POSTs)", create_all(http, pods, count))

            async def full_list() -> None:
                async with http.get(pods) as response:
                    body = await response.read()
                assert len(json.loads(body)["items"]) == count

            await timed(f"list {count} pods (one GET, parsed)", full_list())
            await timed(f"list {count} pods again (cached item JSON)", full_list())

            async def chunked() -> None:
                token_ = ""
                total = 0
                for _ in range(count // 500 + 2):
                    async with http.get(pods, params={"limit": "500", "continue": token_}) as r:
                        page = await r.json()
                    total += len(page["items"])
                    token_ = page["metadata"].get("continue", "")
                    if not token_:
                        break
                assert total == count

            await timed("list in chunks of 500 (limit/continue)", chunked())

            async def selected() -> None:
                async with http.get(pods, params={"labelSelector": "shard=7"}) as r:
                    assert len((await r.json())["items"]) == count // 100

            await timed("list with labelSelector (1% match)", selected())
            await timed(
                f"watch from 0: {count} synthetic ADDED",
                watch_count(http, pods + "?watch=1", count),
            )

            async def live_watch() -> None:
                async with http.get(pods, params={"limit": "1"}) as r:
                    rv = (await r.json())["metadata"]["resourceVersion"]
                watcher = asyncio.create_task(
                    watch_count(http, f"{pods}?watch=1&resourceVersion={rv}", 1000)
                )
                for i in range(1000):
                    patch = {"metadata": {"annotations": {"activity": str(i)}}}
                    async with http.patch(
                        f"{pods}/jupyter-user{i:05d}", json=patch,
                        headers={"Content-Type": "application/merge-patch+json"},
                    ) as r:  # fmt: skip
                        assert r.status == 200
                await watcher

            await timed("1000 sequential PATCHes seen by a live watch", live_watch())
    finally:
        process.terminate()
        await process.wait()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=10_000)
    raise SystemExit(asyncio.run(main(parser.parse_args().pods)))
