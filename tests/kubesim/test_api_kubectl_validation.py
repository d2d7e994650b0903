"""kubectl's default validation against kubesim, served by the recorded OpenAPI documents.

kubectl downloads /openapi/v3 (and /openapi/v2 as protobuf) before apply and
create; with the real server's documents it sends fieldValidation=Strict and
kubesim refuses unknown fields as a real server does. No --validate=false
anywhere here.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_api_kubectl import POD_YAML, Kubectl, kubectl_for

from kubesim import openapi
from kubesim.cluster import SimCluster

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")

CONFIGMAP_YAML = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
"""
# A typo beside the real field: the only fault is the unknown one.
BAD_POD_YAML = POD_YAML.replace(
    "    image: python:3.11\n", "    image: python:3.11\n    imagee: x\n"
)


@pytest.fixture
async def kubectl(make_cluster: Any, tmp_path: Path) -> Kubectl:
    cluster: SimCluster = await make_cluster(kubelet=None, tls=True)
    (tmp_path / "configmap.yaml").write_text(CONFIGMAP_YAML)
    (tmp_path / "bad.yaml").write_text(BAD_POD_YAML)
    return await kubectl_for(cluster, tmp_path)


async def test_apply_and_create_with_default_validation(kubectl: Kubectl, tmp_path: Path) -> None:
    _, out, _ = await kubectl("apply", "-f", str(tmp_path / "pod.yaml"))
    assert "pod/web created" in out
    _, out, _ = await kubectl("create", "-f", str(tmp_path / "configmap.yaml"))
    assert "configmap/settings created" in out
    # A second apply patches the existing object, validated as well.
    (tmp_path / "pod.yaml").write_text(POD_YAML.replace("app: web", "app: web2"))
    _, out, _ = await kubectl("apply", "-f", str(tmp_path / "pod.yaml"))
    assert "pod/web configured" in out
    _, out, _ = await kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.labels.app}")
    assert out == "web2"


async def test_unknown_fields_are_refused(kubectl: Kubectl, tmp_path: Path) -> None:
    for verb in ("create", "apply"):
        code, _, err = await kubectl(verb, "-f", str(tmp_path / "bad.yaml"), ok=False)
        assert code == 1, err
        assert 'strict decoding error: unknown field "spec.containers[0].imagee"' in err
    code, _, err = await kubectl("get", "pod", "web", ok=False)
    assert code == 1 and "NotFound" in err
    # On an existing object the patch is checked too.
    await kubectl("apply", "-f", str(tmp_path / "pod.yaml"))
    code, _, err = await kubectl("apply", "-f", str(tmp_path / "bad.yaml"), ok=False)
    assert code == 1 and 'unknown field "spec.containers[0].imagee"' in err
    # Asking for no validation still works, as on a real server.
    await kubectl(
        "create", "-f", str(tmp_path / "bad.yaml"), "--validate=false", "-n", "kube-public"
    )


async def test_kubectl_explain_reads_the_schema(kubectl: Kubectl) -> None:
    _, out, _ = await kubectl("explain", "pod.spec.containers.image")
    assert "FIELD: image <string>" in out


async def test_openapi_documents_as_the_real_server_serves_them(make_cluster: Any) -> None:
    cluster: SimCluster = await make_cluster(kubelet=None)
    auth = {"Authorization": f"Bearer {cluster.token}"}
    async with aiohttp.ClientSession(cluster.url, headers=auth) as http:
        async with http.get("/openapi/v3") as answer:
            assert answer.status == 200
            paths = json.loads(await answer.read())["paths"]  # typed text/plain, as the real one
        assert {"api/v1", "apis/apps/v1", "apis/rbac.authorization.k8s.io/v1"} <= set(paths)
        url = paths["api/v1"]["serverRelativeURL"]
        async with http.get(url) as answer:
            assert answer.status == 200
            assert answer.headers["Cache-Control"] == "public, immutable"
            etag = answer.headers["Etag"]
            document = await answer.json()
        assert "io.k8s.api.core.v1.Pod" in document["components"]["schemas"]
        async with http.get(url, headers={"If-None-Match": etag}) as answer:
            assert answer.status == 304
        stale = url.split("?")[0] + "?hash=0"
        async with http.get(stale, allow_redirects=False) as answer:
            assert answer.status == 301 and answer.headers["Location"] == url
        async with http.get("/openapi/v3/apis/nosuch/v1") as answer:
            assert answer.status == 404

        async with http.get("/openapi/v2", headers={"Accept": openapi.V2_PROTOBUF}) as answer:
            assert answer.status == 200
            assert answer.content_type == openapi.V2_PROTOBUF_ANSWER
            protobuf = await answer.read()
        assert protobuf == gzip.decompress((openapi.DATA / "v2.pb.gz").read_bytes())
        async with http.get("/openapi/v2", headers={"Accept": "application/json"}) as answer:
            v2 = json.loads(await answer.read())
        assert "io.k8s.api.core.v1.Pod" in v2["definitions"]
        assert all(p.startswith(("/api/v1/", "/apis/")) for p in v2["paths"])
    async with aiohttp.ClientSession(cluster.url) as anonymous, anonymous.get("/openapi/v3") as a:
        assert a.status == 401


async def test_warn_and_ignore_accept_unknown_fields(make_cluster: Any) -> None:
    cluster: SimCluster = await make_cluster(kubelet=None)
    auth = {"Authorization": f"Bearer {cluster.token}"}
    url = "/api/v1/namespaces/default/configmaps"
    async with aiohttp.ClientSession(cluster.url, headers=auth) as http:
        # No parameter means Warn: accepted, one Warning per unknown field.
        body = {"metadata": {"name": "a"}, "data": {"k": "v"}, "foo": 1, "bar": {"x": 1}}
        async with http.post(url, json=body) as answer:
            assert answer.status == 201
            assert answer.headers.getall("Warning") == [
                '299 - "unknown field \\"foo\\""',
                '299 - "unknown field \\"bar\\""',
            ]
        patch = {"baz": 2}
        headers = {"Content-Type": "application/merge-patch+json"}
        async with http.patch(f"{url}/a", data=json.dumps(patch), headers=headers) as answer:
            assert answer.status == 200
            # Only the new one: create dropped the others, as the real decoder does.
            assert answer.headers.getall("Warning") == ['299 - "unknown field \\"baz\\""']
            stored = await answer.json()
        assert "foo" not in stored and "baz" not in stored and stored["data"] == {"k": "v"}
        body["metadata"]["name"] = "b"
        async with http.post(url, json=body, params={"fieldValidation": "Ignore"}) as answer:
            assert answer.status == 201 and "Warning" not in answer.headers
        async with http.post(url, json=body, params={"fieldValidation": "Bogus"}) as answer:
            assert answer.status == 422
            status = await answer.json()
        assert status["details"]["kind"] == "CreateOptions"
        assert status["details"]["causes"][0]["field"] == "fieldValidation"


async def test_kubectl_validate_warn_prints_the_warning(kubectl: Kubectl, tmp_path: Path) -> None:
    _, out, err = await kubectl("create", "--validate=warn", "-f", str(tmp_path / "bad.yaml"))
    assert "pod/web created" in out
    assert 'Warning: unknown field "spec.containers[0].imagee"' in err
