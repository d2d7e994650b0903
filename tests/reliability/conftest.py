"""Fixtures of the reliability suite: recording pods, podgate as `podgate run` builds it, mitmdump.

`gate` starts podgate twice over (proxy-only and control-enabled, the
latter with its embedded kubesim), each from a real config file, with three
recording pods behind config routes: /open (no session needed), and
/user/alice, /user/bob (each only for that user's session). Every fixture
stops what it starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from reliability_kit import (
    MITM_MISSING,
    Gate,
    Middlebox,
    RecordingPod,
    find_mitmdump,
    open_gate,
    start_mitmdump,
    start_pod,
    start_process_pod,
    stop_process,
)


@pytest.fixture(scope="module")
def alice_behind_mitmproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Middlebox]:
    """alice's pod as a process, with mitmdump (faults_addon.py) in front of it."""
    path = find_mitmdump()
    if path is None:
        pytest.skip(MITM_MISSING)
    pod = start_process_pod("alice")
    try:
        box = start_mitmdump(path, pod.url, tmp_path_factory.mktemp("mitmdump"))
        try:
            yield box
        finally:
            stop_process(box.process)
    finally:
        stop_process(pod.process)


@pytest.fixture
async def pods() -> AsyncIterator[tuple[RecordingPod, RecordingPod, RecordingPod]]:
    started: list[RecordingPod] = []
    try:
        for name in ("open", "alice", "bob"):
            started.append(await start_pod(name))
        yield started[0], started[1], started[2]
    finally:
        for pod in started:
            await pod.server.close()


@pytest.fixture(params=["proxy", "control"])
async def gate(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pods: tuple[RecordingPod, RecordingPod, RecordingPod],
) -> AsyncIterator[Gate]:
    async with open_gate(request.param, tmp_path, pods) as running:
        yield running


@pytest.fixture(params=["proxy", "control", "proxy+tls", "control+tls"])
async def gate_and_tls_gate(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pods: tuple[RecordingPod, RecordingPod, RecordingPod],
) -> AsyncIterator[Gate]:
    """`gate`, and the same again with HTTPS on its public port (the hostile suites)."""
    async with open_gate(request.param, tmp_path, pods) as running:
        yield running
