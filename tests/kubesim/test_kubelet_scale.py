"""Many pods over HTTP: the shared-process echo mode and 200 real processes.

Echo pods (image kubesim/echo, no command) are served inside kubesim's own
process, each on its own address, demanding its own token, echoing HTTP
and WebSocket traffic: 1,000 of them turn Ready quickly. 200 pods that are
each a real process turn Ready in bounded time, and stopping the cluster
leaves none of their processes behind. The measured figures are printed
(run with -s to see them).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import aiohttp

ECHO = "kubesim/echo:latest"


def echo_pod(name: str, port: int, token: str | None = None) -> dict[str, Any]:
    env = [{"name": "JUPYTERHUB_API_TOKEN", "value": token}] if token else []
    return {
        "metadata": {"name": name, "labels": {"app": "scale"}},
        "spec": {
            "containers": [
                {"name": "notebook", "image": ECHO, "env": env, "ports": [{"containerPort": port}]}
            ]
        },
    }


def is_ready(pod: Any) -> bool:
    conditions = pod.status.conditions if pod.status else None
    return any(c.type == "Ready" and c.status == "True" for c in conditions or [])


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def create_all(sim: Any, bodies: list[dict[str, Any]], concurrency: int = 16) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def create(body: dict[str, Any]) -> None:
        async with gate:
            await sim.core.create_namespaced_pod("default", body)

    await asyncio.gather(*(create(body) for body in bodies))


async def until_all_ready(sim: Any, count: int, within: float) -> dict[str, Any]:
    """Follow the namespace's pod watch until `count` pods are Ready; name -> pod."""
    ready: dict[str, Any] = {}

    def note(_: str, pod: Any) -> bool:
        if is_ready(pod):
            ready[pod.metadata.name] = pod
        return len(ready) >= count

    await sim.follow(
        sim.core.list_namespaced_pod, "metadata.namespace=default", note, within=within
    )
    return ready


async def refused(address: str, port: int, within: float = 3.0) -> bool:
    """Whether new connections to address:port are refused (soon, bounded)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(address, port)
        except ConnectionRefusedError:
            return True
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.02)
    return False


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


async def test_echo_pods_share_one_process_each_on_its_own_address(sim: Any, pod_port: int) -> None:
    port_a, port_b = pod_port, pod_port + 1
    await sim.core.create_namespaced_pod("default", echo_pod("echo-a", port_a, "secret-a"))
    await sim.core.create_namespaced_pod("default", echo_pod("echo-b", port_b, "secret-b"))
    ready = await until_all_ready(sim, 2, within=10)
    a, b = ready["echo-a"].status.pod_ip, ready["echo-b"].status.pod_ip
    assert a != b
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.get(f"http://{a}:{port_a}/user/ada/api") as reply:
            assert reply.status == 403  # no token
        async with session.get(
            f"http://{a}:{port_a}/user/ada/api", headers=auth("secret-b")
        ) as reply:
            assert reply.status == 403  # the other pod's token
        async with session.post(
            f"http://{a}:{port_a}/user/ada/api?x=1", headers=auth("secret-a"), data=b"ping"
        ) as reply:
            assert reply.status == 200
            echoed = await reply.json()
        assert echoed["pod"] == "echo-a" and echoed["path"] == "/user/ada/api"
        assert echoed["method"] == "POST" and echoed["body"] == "ping"
        assert echoed["query"] == "x=1"
        bearer = {"Authorization": "Bearer secret-b"}
        async with session.get(f"http://{b}:{port_b}/", headers=bearer) as reply:
            assert reply.status == 200 and (await reply.json())["pod"] == "echo-b"
        async with session.ws_connect(f"ws://{b}:{port_b}/ws?token=secret-b") as ws:
            await ws.send_str("hello")
            assert (await ws.receive(timeout=5)).data == "hello"
            await ws.send_bytes(b"\x00\x01")
            assert (await ws.receive(timeout=5)).data == b"\x00\x01"
        # Deleting a pod closes its address and no other.
        await sim.remove("echo-a")
        assert await refused(a, port_a), "a deleted echo pod still accepts connections"
        async with session.get(f"http://{b}:{port_b}/?token=secret-b") as reply:
            assert reply.status == 200


async def keep_alive_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """One GET on an open connection; the answer's head and JSON body."""
    writer.write(b"GET /api HTTP/1.1\r\nHost: pod\r\nConnection: keep-alive\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


async def test_deleting_an_echo_pod_cuts_its_open_connections(sim: Any, pod_port: int) -> None:
    await sim.core.create_namespaced_pod("default", echo_pod("echo-a", pod_port))
    await sim.core.create_namespaced_pod("default", echo_pod("echo-b", pod_port + 1))
    ready = await until_all_ready(sim, 2, within=10)
    a, b = ready["echo-a"].status.pod_ip, ready["echo-b"].status.pod_ip
    to_a = await asyncio.open_connection(a, pod_port)
    to_b = await asyncio.open_connection(b, pod_port + 1)
    try:
        assert b'"pod": "echo-a"' in await keep_alive_get(*to_a)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            websocket = await session.ws_connect(f"ws://{a}:{pod_port}/ws")
            await sim.remove("echo-a")
            # The pod's process would have died with its sockets: the kept-alive
            # connection ends (no 503 from a pod that is gone) and so does the
            # WebSocket, while the other pod's connection still serves.
            assert await asyncio.wait_for(to_a[0].read(), 5) == b""
            closing = await websocket.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            await websocket.close()
        assert b'"pod": "echo-b"' in await keep_alive_get(*to_b)
    finally:
        for _, writer in (to_a, to_b):
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def test_a_thousand_echo_pods_all_turn_ready_each_on_its_own_address(
    sim: Any, pod_port: int
) -> None:
    started = time.monotonic()
    await create_all(sim, [echo_pod(f"echo-{i}", pod_port, f"t{i}") for i in range(1000)])
    created = time.monotonic() - started
    # How fast is for bench/ (about 2 s on a quiet machine); here, that they all get there.
    ready = await until_all_ready(sim, 1000, within=120)
    took = time.monotonic() - started
    print(f"\n1,000 echo pods: created over HTTP in {created:.1f}s, all Ready after {took:.1f}s")
    addresses = {pod.status.pod_ip for pod in ready.values()}
    assert len(addresses) == 1000
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for name in random.sample(sorted(ready), 20):
            token = name.replace("echo-", "t")
            url = f"http://{ready[name].status.pod_ip}:{pod_port}/?token={token}"
            async with session.get(url) as reply:
                assert reply.status == 200 and (await reply.json())["pod"] == name


async def test_two_hundred_pods_each_its_own_process_then_none_left(make_sim: Any) -> None:
    sim = await make_sim()
    # `$$$$`: Kubernetes expansion turns `$$` into `$`, so the shell sees `$$`.
    shell = {"name": "main", "image": "x", "command": ["sh", "-c", "echo pid $$$$; exec sleep 60"]}
    bodies = [
        {"metadata": {"name": f"proc-{i}"}, "spec": {"containers": [shell]}} for i in range(200)
    ]
    started = time.monotonic()
    await create_all(sim, bodies)
    ready = await until_all_ready(sim, 200, within=30)
    took = time.monotonic() - started
    print(f"\n200 pods, one process each: all Ready after {took:.1f}s")
    assert took < 20, f"200 process pods took {took:.1f}s"
    assert len({pod.status.pod_ip for pod in ready.values()}) == 200
    pids = {pid for i in range(200) for pid in await sim.pids(f"proc-{i}")}
    assert len(pids) == 200 and all(alive(pid) for pid in pids)
    await sim.cluster.stop()
    assert not [pid for pid in pids if alive(pid)]
