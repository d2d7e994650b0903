"""Spawn progress reads as plain words; the raw Events go to the log and to admins.

A real podgate whose echo pods never pass their readiness probe: kubesim's
kubelet writes real "Readiness probe failed: …" Events (with the pod's
address) while the start waits, until the start timeout ends it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from hub_kit import Browser

from control.pod_state import event_detail, progress_message
from podgate.assembly import Podgate

MakePodgate = Callable[..., Awaitable[Podgate]]
TOKEN = "progress-admin-token-0123456789"
NEVER_READY = {"readiness_path": "never-answers", "start_timeout": 4.0}
# What the raw kubelet text is made of, and a person must not read.
RAW = re.compile(r"probe|http://|\d+\.\d+\.\d+\.\d+|statuscode|dial tcp", re.IGNORECASE)


async def _admin_stream(ops: str, user: str) -> list[dict[str, Any]]:
    events = []
    headers = {"Authorization": f"token {TOKEN}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as client,
        client.get(f"{ops}/hub/api/users/{user}/server/progress", headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        async for line in response.content:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
    return events


async def test_a_failing_probe_reads_as_words_and_admins_and_the_log_get_the_raw_event(
    make_podgate: MakePodgate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="control.spawner")
    tokens = [{"name": "ops", "token": TOKEN, "scopes": ["admin:servers", "list:users"]}]
    pg = await make_podgate({"spawner": NEVER_READY, "api_tokens": tokens})
    async with Browser(pg.public_url) as ada:
        events = await ada.start_server("ada")
    assert events[-1].get("failed"), events
    steps = [e["message"] for e in events[:-1]]
    assert "Server not answering yet" in steps, steps
    assert not [m for m in steps if RAW.search(m)], steps
    assert all("detail" not in e for e in events)

    # The same start, replayed to an admin's token: each Event's raw text is there too.
    replayed = await _admin_stream(pg.ops_url, "ada")
    details = [e.get("detail", "") for e in replayed]
    assert any(d.startswith("Warning Unhealthy: Readiness probe failed") for d in details), details

    logged = [r.getMessage() for r in caplog.records if r.name == "control.spawner"]
    assert any("Readiness probe failed" in m for m in logged), logged


def test_event_words_never_carry_the_clusters_message() -> None:
    raw = 'Readiness probe failed: Get "http://127.25.37.216:8888/user/ada/api": dial tcp'
    event = {"type": "Warning", "reason": "Unhealthy", "message": raw}
    assert progress_message(event) == (90, "Server not answering yet")
    assert event_detail(event) == f"Warning Unhealthy: {raw}"
    assert progress_message({"reason": "SomethingNew", "message": "x"}) == (15, "Still starting")
