"""Spawner on both API servers: a start is routed and reported, stop removes the route,
restart adopts."""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
import pytest

from control.errors import BadProfile, NotFound
from control.kube import Kube
from control.settings import Profile, Storage
from tests.control.test_spawner_support import NAMESPACE, echo_settings, spawner_stack, until

pytestmark = pytest.mark.both_servers


async def test_echo_start_is_ready_routed_and_reported(kube: Kube) -> None:
    async with spawner_stack(kube, echo_settings()) as stack:
        assert stack.spawner.status("ada").state == "stopped"
        await stack.spawner.start("ada")
        events = await stack.events_of("ada")
        assert events[0].message == "Server requested"
        assert [e.progress for e in events] == sorted(e.progress for e in events)
        assert events[-1].ready and events[-1].url == "/user/ada/"
        assert any("node" in e.message.lower() for e in events)  # from the pod's Events

        status = stack.spawner.status("ada")
        assert status.state == "running"
        assert status.url == "/user/ada/"
        assert status.pod == "jupyter-ada"
        assert status.started is not None
        assert stack.spawner.running_users() == ["ada"]
        route = stack.table.get("/user/ada/")
        assert route is not None and route.user == "ada" and route.data["token"]
        token = {"Authorization": f"token {route.data['token']}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(route.target.url + "/user/ada/api", headers=token) as reply,
        ):
            assert reply.status == 200  # the pod's own token, as the edge will send it
        assert ("ready", "ada", "") in stack.outcomes

        # Starting a running server again does nothing.
        await stack.spawner.start("ada")
        assert len((await kube.list("pods", NAMESPACE)).items) == 1


async def test_real_process_pod_with_readiness_probe(kube: Any) -> None:
    server = (
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = os.environ['PODGATE_USER'].encode()\n"
        "        self.send_response(200)\n"
        "        self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers()\n"
        "        self.wfile.write(body)\n"
        "    def log_message(self, *args):\n"
        "        pass\n"
        "http.server.HTTPServer((os.environ['POD_IP'], 8888), H).serve_forever()\n"
    )
    settings = echo_settings(
        image="python:3", cmd=(sys.executable, "-c", server), readiness_path="api"
    )
    async with spawner_stack(kube, settings) as stack:
        await stack.spawner.start("bob")
        events = await stack.events_of("bob")
        assert events[-1].ready, [e.message for e in events]
        route = stack.table.get("/user/bob/")
        assert route is not None
        async with (
            aiohttp.ClientSession() as session,
            session.get(route.target.url + "/user/bob/") as reply,
        ):
            assert reply.status == 200 and await reply.text() == "bob"
        await stack.spawner.stop("bob")
        await until(lambda: stack.table.get("/user/bob/") is None)


async def test_stop_removes_the_route_and_keeps_the_claim(kube: Kube) -> None:
    settings = echo_settings(storage=Storage(size="1Gi"))
    async with spawner_stack(kube, settings) as stack:
        await stack.spawner.start("ada")
        assert (await stack.spawner.wait("ada", 10)).state == "running"
        assert stack.table.get("/user/ada/") is not None

        await stack.spawner.stop("ada")
        assert stack.spawner.status("ada").state in ("stopping", "running", "stopped")
        await until(lambda: stack.table.get("/user/ada/") is None)
        await until(lambda: stack.spawner.status("ada").state == "stopped")
        assert stack.spawner.running_users() == []
        claims = await kube.list("persistentvolumeclaims", NAMESPACE)
        assert [c["metadata"]["name"] for c in claims.items] == ["claim-ada"]
        assert any(outcome == "stopped" for outcome, _, _ in stack.outcomes)

        # Stopping what is not running is fine; starting again reuses the claim.
        await stack.spawner.stop("nobody")
        await stack.spawner.start("ada")
        assert (await stack.spawner.wait("ada", 10)).state == "running"


async def test_restart_adopts_running_pods_without_touching_them(kube: Kube) -> None:
    settings = echo_settings()
    async with spawner_stack(kube, settings) as first:
        for user in ("ada", "bob"):
            await first.spawner.start(user)
        for user in ("ada", "bob"):
            assert (await first.spawner.wait(user, 10)).state == "running"
    before = {
        p["metadata"]["name"]: (p["metadata"]["uid"], p["metadata"]["resourceVersion"])
        for p in (await kube.list("pods", NAMESPACE)).items
    }
    # A fresh replica (or podgate after a restart): it only lists and watches.
    async with spawner_stack(kube, settings) as second:
        assert second.spawner.status("ada").state == "running"
        assert second.spawner.status("bob").url == "/user/bob/"
        assert second.spawner.running_users() == ["ada", "bob"]
        for user in ("ada", "bob"):
            route = second.table.get(f"/user/{user}/")
            assert route is not None and route.user == user
        after = {
            p["metadata"]["name"]: (p["metadata"]["uid"], p["metadata"]["resourceVersion"])
            for p in (await kube.list("pods", NAMESPACE)).items
        }
        assert after == before


async def test_profiles_are_validated_and_recorded(kube: Kube) -> None:
    settings = echo_settings(
        profiles=(
            Profile(slug="small", display_name="Small", default=True),
            Profile(slug="large", display_name="Large", env={"SIZE": "large"}),
        )
    )
    async with spawner_stack(kube, settings) as stack:
        with pytest.raises(BadProfile, match="nope"):
            await stack.spawner.start("ada", "nope")
        assert stack.spawner.status("ada").state == "stopped"
        await stack.spawner.start("ada", "large")
        status = await stack.spawner.wait("ada", 10)
        assert status.state == "running" and status.profile == "large"
        pod = await kube.get("pods", NAMESPACE, "jupyter-ada")
        env = {v["name"]: v.get("value") for v in pod["spec"]["containers"][0]["env"]}
        assert env["SIZE"] == "large"


async def test_stop_during_start_cancels_it(kube: Kube) -> None:
    settings = echo_settings(
        image="python:3",
        cmd=(sys.executable, "-c", "import time; time.sleep(30)"),
        readiness_path="api",
    )
    async with spawner_stack(kube, settings) as stack:
        await stack.spawner.start("ada")
        assert stack.spawner.status("ada").state == "starting"
        await stack.spawner.stop("ada")
        events = await stack.events_of("ada")
        assert events[-1].failed and "stopped" in events[-1].message
        await until(lambda: _gone(kube, "jupyter-ada"))
        # The API has let the pod go; the spawner's view follows through its watch.
        await until(lambda: stack.spawner.status("ada").state == "stopped")


async def _gone(kube: Kube, name: str) -> bool:
    try:
        await kube.get("pods", NAMESPACE, name)
    except NotFound:
        return True
    return False
