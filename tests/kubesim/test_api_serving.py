"""How kubesim is served: TLS, kubeconfig, discovery, metrics.k8s.io, standalone process."""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from cryptography import x509
from kubernetes_asyncio import client, config

from kubesim.cluster import SimCluster


async def test_tls_cluster_and_kubeconfig(make_cluster: Any, tmp_path: Path) -> None:
    started = time.monotonic()
    cluster = await make_cluster(kubelet=None, tls=True)
    assert time.monotonic() - started < 1.0
    assert cluster.url.startswith("https://127.0.0.1:")
    ca = x509.load_pem_x509_certificate(cluster.ca_file.read_bytes())
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert constraints.critical and constraints.value.ca
    assert usage.critical and usage.value.key_cert_sign
    cluster.write_kubeconfig(tmp_path / "kc")
    document = yaml.safe_load((tmp_path / "kc").read_text())
    assert document["current-context"] == "kubesim"
    assert (tmp_path / "kc").stat().st_mode & 0o077 == 0  # holds a token
    # load_kube_config into a fresh Configuration, as podgate's wiring does.
    configuration = client.Configuration()
    await config.load_kube_config(str(tmp_path / "kc"), client_configuration=configuration)
    async with client.ApiClient(configuration) as api:
        namespaces = await client.CoreV1Api(api).list_namespace()
    assert "default" in [n.metadata.name for n in namespaces.items]
    # The server certificate verifies against the CA for 127.0.0.1 (IP SAN).
    context = ssl.create_default_context(cafile=str(cluster.ca_file))
    headers = {"Authorization": f"Bearer {cluster.token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{cluster.url}/api", ssl=context, headers=headers) as r:
            assert r.status == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(f"{cluster.url}/api", ssl=ssl.create_default_context())


async def test_discovery_documents(api_cluster: SimCluster, api_client: Any) -> None:
    version = await client.VersionApi(api_client).get_code()
    assert version.major == "1" and version.git_version.startswith("v1.")
    core = await client.CoreApi(api_client).get_api_versions()
    assert core.versions == ["v1"]
    resources = await client.CoreV1Api(api_client).get_api_resources()
    by_name = {r.name: r for r in resources.resources}
    assert {"pods", "namespaces", "persistentvolumeclaims", "events", "secrets"} <= set(by_name)
    assert "watch" in by_name["pods"].verbs and by_name["pods"].short_names == ["po"]
    assert by_name["namespaces"].namespaced is False
    groups = await client.ApisApi(api_client).get_api_versions()
    names = {g.name for g in groups.groups}
    assert {"apps", "metrics.k8s.io", "rbac.authorization.k8s.io", "networking.k8s.io",
            "policy"} <= names  # fmt: skip
    headers = {"Authorization": f"Bearer {api_cluster.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for path in ("/api/", "/api/v1/", "/version/", "/apis/"):
            async with http.get(api_cluster.url + path) as r:
                assert r.status == 200, path
        async with http.get(api_cluster.url + "/apis/metrics.k8s.io/v1beta1") as r:
            kinds = [res["kind"] for res in (await r.json())["resources"]]
            assert kinds == ["PodMetrics"]
        async with http.get(api_cluster.url + "/apis/nothing.example/v1") as r:
            assert r.status == 404


async def test_pod_metrics_without_a_kubelet(api_client: Any) -> None:
    await client.CoreV1Api(api_client).create_namespaced_pod(
        "default",
        {"metadata": {"name": "idle"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    custom = client.CustomObjectsApi(api_client)
    listed = await custom.list_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", "default", "pods"
    )
    assert listed["kind"] == "PodMetricsList" and listed["items"] == []
    with pytest.raises(client.exceptions.ApiException) as e:
        await custom.get_namespaced_custom_object(
            "metrics.k8s.io", "v1beta1", "default", "pods", "idle"
        )
    assert e.value.status == 404


async def test_pod_metrics_from_running_processes(make_cluster: Any, tmp_path: Path) -> None:
    cluster = await make_cluster()
    cluster.write_kubeconfig(tmp_path / "kc")
    async with await config.new_client_from_config(str(tmp_path / "kc")) as api:
        core = client.CoreV1Api(api)
        command = [sys.executable, "-c", "import time; time.sleep(30)"]
        container = {"name": "c", "image": "python", "command": command}
        body = {"metadata": {"name": "busy"}, "spec": {"containers": [container]}}
        await core.create_namespaced_pod("default", body)
        custom = client.CustomObjectsApi(api)
        metrics = None
        async with asyncio.timeout(15):
            while metrics is None:
                try:
                    metrics = await custom.get_namespaced_custom_object(
                        "metrics.k8s.io", "v1beta1", "default", "pods", "busy"
                    )
                except client.exceptions.ApiException as e:
                    assert e.status == 404
                    await asyncio.sleep(0.2)
        assert metrics["kind"] == "PodMetrics"
        usage = metrics["containers"][0]["usage"]
        assert usage["memory"] not in ("", "0") and "cpu" in usage


async def start_process(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubesim", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 10)
    return process, line.decode()


async def test_standalone_process(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    process, line = await start_process(
        "--listen", "127.0.0.1:0", "--kubeconfig", str(kubeconfig), "--tls", "--no-kubelet"
    )
    try:
        assert line.startswith("kubesim listening on https://127.0.0.1:")
        async with await config.new_client_from_config(str(kubeconfig)) as api:
            core = client.CoreV1Api(api)
            await core.create_namespace({"metadata": {"name": "standalone"}})
            assert (await core.read_namespace("standalone")).status.phase == "Active"
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 10)
    assert code == 0


async def test_standalone_rejects_a_bad_listen_address() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubesim", "--listen", "nonsense",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 2
    assert b"HOST:PORT" in err
