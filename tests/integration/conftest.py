"""Fixtures of the process-level integration tests: kubesim running alone, and its REST."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from jupyter_kit import KubeRest, KubesimProcess, start_kubesim_process

NAMESPACE = "podgate"


@pytest.fixture
async def kubesim(tmp_path: Path) -> AsyncIterator[KubesimProcess]:
    """`podgate sim` as its own process (the cluster that outlives the ingress)."""
    sim = await start_kubesim_process(tmp_path)
    try:
        yield sim
    finally:
        await sim.end()


@pytest.fixture
async def kube(kubesim: KubesimProcess) -> AsyncIterator[KubeRest]:
    """kubesim's REST API, with podgate's namespace made."""
    rest = KubeRest(kubesim.url, kubesim.token)
    try:
        status, body = await rest.call(
            "POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}}
        )
        assert status == 201, body
        yield rest
    finally:
        await rest.close()
