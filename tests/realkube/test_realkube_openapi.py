"""kubesim's recorded OpenAPI documents against the real server they came from.

The recording (kubesim/openapi_data, made by record_openapi.py) must be the
pinned release's, byte for byte, and kubectl must meet the same refusal of an
unknown field on both servers.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from realkube_kit import RealKube, run_kubectl, version_of

from kubesim import openapi
from kubesim.cluster import SimCluster

BAD_POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "typo"},
    "spec": {"containers": [{"name": "main", "imagee": "python:3.11"}]},
}  # fmt: skip
GOOD_POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "applied"},
    "spec": {"containers": [{"name": "main", "image": "python:3.11"}]},
}  # fmt: skip
BAD_UPDATE = {
    **GOOD_POD,
    "spec": {"bar": 2, "containers": [{"name": "main", "image": "python:3.11", "foo": 1}]},
}


@pytest.fixture
async def kubesim() -> AsyncIterator[SimCluster]:
    """An API-only kubesim with TLS (kubectl sends tokens only over https)."""
    cluster = SimCluster("127.0.0.1", 0, tls=True, kubelet=None)
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.stop()


@pytest.fixture
def kubesim_kubeconfig(kubesim: SimCluster, tmp_path: Path) -> Path:
    kubesim.write_kubeconfig(tmp_path / "kubeconfig")
    return tmp_path / "kubeconfig"


async def post(
    url: str, token: str, ca_file: str, path: str, body: object
) -> tuple[int, list[str], dict[str, Any]]:
    """POST as the admin: status, Warning headers, the answer."""
    context = ssl.create_default_context(cafile=ca_file)
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(url, headers=headers) as http,
        http.post(path, json=body, ssl=context) as answer,
    ):
        return answer.status, answer.headers.getall("Warning", []), await answer.json()


def test_recording_is_the_pinned_release(realkube: RealKube) -> None:
    assert (openapi.DATA / "VERSION").read_text().strip() == version_of(realkube)
    status, body = realkube.get("/openapi/v3")
    assert status == 200
    paths = json.loads(body)["paths"]
    recorded = openapi.v3_documents()
    assert recorded, "nothing recorded"
    for group_version, (data, etag) in recorded.items():
        # Same bytes, so the same hashed URL as the real server's: kubectl's cache agrees.
        url = paths[group_version]["serverRelativeURL"]
        assert url == f"/openapi/v3/{group_version}?hash={etag}"
        status, live = realkube.get(url)
        assert status == 200
        assert live == data, f"{group_version} changed: run tests/realkube/record_openapi.py"
    status, live_v2 = realkube.get("/openapi/v2", accept="application/json")
    assert status == 200
    recorded_v2 = json.loads(gzip.decompress((openapi.DATA / "v2.json.gz").read_bytes()))
    assert (
        recorded_v2["definitions"]["io.k8s.api.core.v1.Pod"]
        == (json.loads(live_v2)["definitions"]["io.k8s.api.core.v1.Pod"])
    )


async def test_unknown_field_refused_alike(realkube: RealKube, kubesim_kubeconfig: Path) -> None:
    answers = []
    for kubeconfig in (realkube.kubeconfig, kubesim_kubeconfig):
        # In a thread: the in-process kubesim must keep answering meanwhile.
        args = ("create", "-n", "default", "-f", "-")
        code, out = await asyncio.to_thread(
            run_kubectl, kubeconfig, *args, stdin=json.dumps(BAD_POD), ok=False
        )
        assert code == 1, out
        answers.append(out.strip())
    real, sim = answers
    assert 'strict decoding error: unknown field "spec.containers[0].imagee"' in real
    assert sim == real


async def test_unknown_field_in_an_applied_change_refused_alike(
    realkube: RealKube, kubesim_kubeconfig: Path
) -> None:
    """kubectl apply to an existing pod: a strategic merge patch, checked after merging."""
    answers = []
    for kubeconfig in (realkube.kubeconfig, kubesim_kubeconfig):
        apply = ("apply", "-n", "default", "-f", "-")
        await asyncio.to_thread(run_kubectl, kubeconfig, *apply, stdin=json.dumps(GOOD_POD))
        code, out = await asyncio.to_thread(
            run_kubectl, kubeconfig, *apply, stdin=json.dumps(BAD_UPDATE), ok=False
        )
        assert code == 1, out
        assert out.startswith("The request is invalid: patch: Invalid value: "), out
        # The quoted patch differs: the real server quotes it after merging consumed
        # its directives. The verdict must not.
        answers.append(out.rpartition("strict decoding error: ")[2].strip())
    real, sim = answers
    assert real == 'unknown field "spec.bar", unknown field "spec.containers[0].foo"'
    assert sim == real


async def test_unknown_fields_warned_and_dropped_alike(
    realkube: RealKube, kubesim: SimCluster
) -> None:
    """No fieldValidation (Warn): accepted, one warning per field, the field not stored."""
    name = f"warned-{uuid.uuid4().hex[:6]}"
    body = {"metadata": {"name": name}, "data": {"k": "v"}, "foo": 1, "bar": {"x": 1}}
    path = "/api/v1/namespaces/default/configmaps"
    answers = []
    for url, token, ca in (
        (realkube.url, realkube.token, str(realkube.ca_file)),
        (kubesim.url, kubesim.token, str(kubesim.ca_file)),
    ):
        status, warnings, stored = await post(url, token, ca, path, body)
        answers.append((status, warnings, {k: stored.get(k) for k in ("foo", "bar", "data")}))
    real, sim = answers
    assert real == (201, ['299 - "unknown field \\"foo\\""', '299 - "unknown field \\"bar\\""'],
                    {"foo": None, "bar": None, "data": {"k": "v"}})  # fmt: skip
    assert sim == real
