"""Create, read, replace, patch and delete through the real kubernetes_asyncio client."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubesim.cluster import SimCluster


def pod(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "notebook", "image": "python:3.11"}], **spec},
    }


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body)
    return body


async def test_create_answers_201_with_server_fields(api_cluster: SimCluster) -> None:
    headers = {"Authorization": f"Bearer {api_cluster.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        url = f"{api_cluster.url}/api/v1/namespaces/default/pods"
        async with http.post(url, json=pod("alice")) as response:
            assert response.status == 201
            created = await response.json()
    meta = created["metadata"]
    assert meta["namespace"] == "default"
    assert meta["uid"] and meta["resourceVersion"].isdigit()
    assert meta["creationTimestamp"].endswith("Z")
    # A live pod has no deletionTimestamp key at all, not a null.
    assert "deletionTimestamp" not in meta
    assert created["status"]["phase"] == "Pending"


async def test_pod_round_trip_and_already_exists(core_api: Any) -> None:
    created = await core_api.create_namespaced_pod("default", pod("bob", {"app": "nb"}))
    assert created.metadata.name == "bob"
    got = await core_api.read_namespaced_pod("bob", "default")
    assert got.metadata.uid == created.metadata.uid
    assert got.spec.containers[0].image == "python:3.11"
    with pytest.raises(ApiException) as e:
        await core_api.create_namespaced_pod("default", pod("bob"))
    assert e.value.status == 409
    assert status_of(e.value)["reason"] == "AlreadyExists"
    assert status_of(e.value)["details"] == {"name": "bob", "kind": "pods"}


async def test_not_found_is_a_404_status(core_api: Any) -> None:
    with pytest.raises(ApiException) as e:
        await core_api.read_namespaced_pod("nobody", "default")
    assert e.value.status == 404
    body = status_of(e.value)
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "NotFound", 404)
    assert body["message"] == 'pods "nobody" not found'
    with pytest.raises(ApiException) as e:
        await core_api.create_namespaced_pod("no-such-namespace", pod("x"))
    assert e.value.status == 404
    assert status_of(e.value)["message"] == 'namespaces "no-such-namespace" not found'


async def test_invalid_objects_are_422_with_causes(core_api: Any) -> None:
    with pytest.raises(ApiException) as e:
        await core_api.create_namespaced_pod("default", pod("Not_A_DNS_Name"))
    assert e.value.status == 422
    body = status_of(e.value)
    assert body["reason"] == "Invalid"
    assert body["details"]["kind"] == "Pod"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    no_containers = {"metadata": {"name": "empty"}, "spec": {"containers": []}}
    with pytest.raises(ApiException) as e:
        await core_api.create_namespaced_pod("default", no_containers)
    causes = status_of(e.value)["details"]["causes"]
    assert causes == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"}
    ]
    with pytest.raises(ApiException) as e:
        await core_api.create_namespace({"metadata": {"name": "a.b"}})
    assert e.value.status == 422


@pytest.mark.parametrize("port", [0, 70000, "8888"])
async def test_container_ports_out_of_range_are_422(core_api: Any, port: Any) -> None:
    body = pod("ported")
    body["spec"]["containers"][0]["ports"] = [{"containerPort": 8888}, {"containerPort": port}]
    with pytest.raises(ApiException) as e:
        await core_api.create_namespaced_pod("default", body)
    assert e.value.status == 422
    [cause] = status_of(e.value)["details"]["causes"]
    assert cause["field"] == "spec.containers[0].ports[1].containerPort"
    assert "must be between 1 and 65535, inclusive" in cause["message"]


@pytest.mark.parametrize("grace", [-1, "soon", 1.5])
async def test_grace_periods_must_be_whole_seconds(core_api: Any, grace: Any) -> None:
    with pytest.raises(ApiException) as e:
        await core_api.create_namespaced_pod(
            "default", pod("odd", terminationGracePeriodSeconds=grace)
        )
    assert e.value.status == 422
    [cause] = status_of(e.value)["details"]["causes"]
    assert cause["field"] == "spec.terminationGracePeriodSeconds"
    created = await core_api.create_namespaced_pod(
        "default", pod("even", terminationGracePeriodSeconds=0)
    )
    assert created.spec.termination_grace_period_seconds == 0


async def test_body_without_kind_and_namespace_mismatch(api_cluster: SimCluster) -> None:
    headers = {"Authorization": f"Bearer {api_cluster.token}"}
    base = f"{api_cluster.url}/api/v1/namespaces/default/configmaps"
    async with aiohttp.ClientSession(headers=headers) as http:
        # No kind/apiVersion in the body: taken from the URL.
        async with http.post(base, json={"metadata": {"name": "c1"}, "data": {"k": "v"}}) as r:
            assert r.status == 201
            body = await r.json()
            assert (body["kind"], body["apiVersion"]) == ("ConfigMap", "v1")
        other_ns = {"metadata": {"name": "c2", "namespace": "kube-system"}}
        async with http.post(base, json=other_ns) as r:
            assert r.status == 400
            assert (await r.json())["reason"] == "BadRequest"
        async with http.post(
            base, data=b"{not json", headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == 400
        async with http.get(base + "?labelSelector=a%20in%20(b") as r:
            assert r.status == 400
        async with http.get(base + "?limit=many") as r:
            assert r.status == 400
        async with http.get(f"{api_cluster.url}/api/v1/namespaces/default/widgets") as r:
            assert r.status == 404
            assert (await r.json())["reason"] == "NotFound"
        async with http.put(base) as r:
            assert r.status == 405
        async with http.get(base + "/c1/status") as r:  # configmaps have no status
            assert r.status == 404


async def test_replace_with_stale_resource_version_conflicts(core_api: Any) -> None:
    created = await core_api.create_namespaced_config_map(
        "default", {"metadata": {"name": "settings"}, "data": {"a": "1"}}
    )
    created.data = {"a": "2"}
    replaced = await core_api.replace_namespaced_config_map("settings", "default", created)
    assert replaced.data == {"a": "2"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    created.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as e:
        await core_api.replace_namespaced_config_map("settings", "default", created)
    assert e.value.status == 409
    assert status_of(e.value)["reason"] == "Conflict"
    renamed = {"metadata": {"name": "other"}, "data": {}}
    with pytest.raises(ApiException) as e:
        await core_api.replace_namespaced_config_map("settings", "default", renamed)
    assert e.value.status == 400


async def test_patch_flavours(core_api: Any, api_client: Any) -> None:
    await core_api.create_namespaced_pod("default", pod("carol", {"app": "nb", "tier": "x"}))
    # kubernetes_asyncio sends a dict patch as strategic merge by default.
    patched = await core_api.patch_namespaced_pod(
        "carol", "default", {"metadata": {"annotations": {"podgate/last-activity": "t1"}}}
    )
    assert patched.metadata.annotations == {"podgate/last-activity": "t1"}
    assert patched.metadata.labels == {"app": "nb", "tier": "x"}
    patched = await core_api.patch_namespaced_pod(
        "carol", "default", {"metadata": {"labels": {"tier": None}}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    assert patched.metadata.labels == {"app": "nb"}
    patched = await core_api.patch_namespaced_pod(
        "carol", "default",
        [{"op": "add", "path": "/metadata/labels/user", "value": "carol"},
         {"op": "test", "path": "/metadata/labels/app", "value": "nb"}],
        _content_type="application/json-patch+json",
    )  # fmt: skip
    assert patched.metadata.labels == {"app": "nb", "user": "carol"}
    # Strategic merge merges containers by name instead of replacing the list.
    patched = await core_api.patch_namespaced_pod(
        "carol", "default", {"spec": {"containers": [{"name": "notebook", "image": "py:3.12"}]}}
    )
    assert [c.image for c in patched.spec.containers] == ["py:3.12"]
    with pytest.raises(ApiException) as e:
        await core_api.patch_namespaced_pod(
            "carol", "default", [{"op": "test", "path": "/metadata/labels/app", "value": "no"}],
            _content_type="application/json-patch+json",
        )  # fmt: skip
    assert e.value.status == 422
    stale = {"metadata": {"resourceVersion": "1", "labels": {"a": "b"}}}
    with pytest.raises(ApiException) as e:
        await core_api.patch_namespaced_pod("carol", "default", stale)
    assert e.value.status == 409
    with pytest.raises(ApiException) as e:
        await core_api.patch_namespaced_pod("nobody", "default", {"metadata": {}})
    assert e.value.status == 404


async def test_patch_with_unknown_content_type_is_415(api_cluster: SimCluster) -> None:
    headers = {"Authorization": f"Bearer {api_cluster.token}"}
    url = f"{api_cluster.url}/api/v1/namespaces/default/configmaps"
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(url, json={"metadata": {"name": "c"}}) as r:
            assert r.status == 201
        async with http.patch(url + "/c", data=b"{}", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415


async def test_status_subresource_and_pod_log(core_api: Any) -> None:
    await core_api.create_namespaced_pod("default", pod("dave"))
    status = await core_api.read_namespaced_pod_status("dave", "default")
    assert status.status.phase == "Pending"
    # Status written through the main resource is ignored, as on a real server.
    patched = await core_api.patch_namespaced_pod(
        "dave", "default", {"status": {"phase": "Running"}}
    )
    assert patched.status.phase == "Pending"
    # …and written through the status subresource, only the status changes.
    patched = await core_api.patch_namespaced_pod_status(
        "dave", "default", {"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Failed"}}
    )
    assert patched.status.phase == "Failed" and not patched.metadata.labels
    with pytest.raises(ApiException) as e:
        await core_api.read_namespaced_pod_log("dave", "default")
    assert e.value.status == 400
    assert "waiting to start" in status_of(e.value)["message"]


async def test_list_with_label_and_field_selectors(core_api: Any) -> None:
    for name, labels in (("a1", {"app": "nb", "user": "a"}), ("b1", {"app": "nb", "user": "b"}),
                         ("c1", {"app": "other"})):  # fmt: skip
        await core_api.create_namespaced_pod("default", pod(name, labels))

    async def names(**selectors: str) -> list[str]:
        pods = await core_api.list_namespaced_pod("default", **selectors)
        return [p.metadata.name for p in pods.items]

    assert await names(label_selector="app=nb") == ["a1", "b1"]
    assert await names(label_selector="app!=nb") == ["c1"]
    assert await names(label_selector="user in (a,c)") == ["a1"]
    assert await names(label_selector="user notin (a)") == ["b1", "c1"]
    assert await names(label_selector="user") == ["a1", "b1"]
    assert await names(label_selector="!user") == ["c1"]
    assert await names(label_selector="app=nb,user=b") == ["b1"]
    # KubeSpawner sends empty selectors when it has none.
    assert await names(label_selector="", field_selector="") == ["a1", "b1", "c1"]
    assert await names(field_selector="metadata.name=b1") == ["b1"]
    assert await names(field_selector="status.phase=Pending,metadata.name!=a1") == ["b1", "c1"]
    everywhere = await core_api.list_pod_for_all_namespaces(label_selector="app=nb")
    assert len(everywhere.items) == 2
    assert everywhere.metadata.resource_version.isdigit()


async def test_list_chunking_with_continue(core_api: Any) -> None:
    for i in range(5):
        await core_api.create_namespaced_config_map("default", {"metadata": {"name": f"cm{i}"}})
    first = await core_api.list_namespaced_config_map("default", limit=2)
    assert [c.metadata.name for c in first.items] == ["cm0", "cm1"]
    assert first.metadata.remaining_item_count == 3
    second = await core_api.list_namespaced_config_map(
        "default", limit=2, _continue=first.metadata._continue
    )
    assert [c.metadata.name for c in second.items] == ["cm2", "cm3"]
    last = await core_api.list_namespaced_config_map(
        "default", limit=2, _continue=second.metadata._continue
    )
    assert [c.metadata.name for c in last.items] == ["cm4"]
    assert last.metadata._continue is None
    with pytest.raises(ApiException) as e:
        await core_api.list_namespaced_config_map("default", _continue="garbage!")
    assert e.value.status == 400


async def test_expired_continue_token_is_410(make_cluster: Any, tmp_path: Any) -> None:
    from kubernetes_asyncio import config

    cluster = await make_cluster(kubelet=None, history_size=2)
    cluster.write_kubeconfig(tmp_path / "kc")
    async with await config.new_client_from_config(config_file=str(tmp_path / "kc")) as api:
        core = client.CoreV1Api(api)
        for i in range(3):
            await core.create_namespaced_secret("default", {"metadata": {"name": f"s{i}"}})
        page = await core.list_namespaced_secret("default", limit=1)
        for i in range(3, 10):  # push the list's version out of the history window
            await core.create_namespaced_secret("default", {"metadata": {"name": f"s{i}"}})
        with pytest.raises(ApiException) as e:
            await core.list_namespaced_secret("default", limit=1, _continue=page.metadata._continue)
        assert e.value.status == 410
        assert status_of(e.value)["reason"] == "Expired"


async def test_delete_answers_object_or_status(core_api: Any) -> None:
    await core_api.create_namespaced_secret("default", {"metadata": {"name": "tok"}})
    answer = await core_api.delete_namespaced_secret("tok", "default")
    assert answer.status == "Success"
    claim = {
        "metadata": {"name": "home-alice"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    created = await core_api.create_namespaced_persistent_volume_claim("default", claim)
    assert created.status.phase == "Bound"  # no provisioner to wait for
    assert created.status.capacity == {"storage": "1Gi"}
    claim_status = await core_api.read_namespaced_persistent_volume_claim_status(
        "home-alice", "default"
    )
    assert claim_status.status.phase == "Bound"
    gone = await core_api.delete_namespaced_persistent_volume_claim("home-alice", "default")
    assert gone.metadata.name == "home-alice"
    with pytest.raises(ApiException) as e:
        await core_api.delete_namespaced_secret("tok", "default")
    assert e.value.status == 404


async def test_namespaces_and_deletecollection(core_api: Any) -> None:
    created = await core_api.create_namespace({"metadata": {"name": "users"}})
    assert created.status.phase == "Active"
    names = [n.metadata.name for n in (await core_api.list_namespace()).items]
    assert "users" in names and "default" in names
    for i in range(3):
        labels = {"app": "nb"} if i < 2 else {}
        await core_api.create_namespaced_config_map(
            "users", {"metadata": {"name": f"c{i}", "labels": labels}}
        )
    await core_api.delete_collection_namespaced_config_map("users", label_selector="app=nb")
    left = await core_api.list_namespaced_config_map("users")
    assert [c.metadata.name for c in left.items] == ["c2"]
    await core_api.create_namespaced_pod("users", pod("p"))
    # As the real server: the namespace, Terminating (kubesim then finishes at once);
    # the client reads it into its declared V1Status, the phase as text.
    answer = await core_api.delete_namespace("users")
    assert answer.kind == "Namespace" and "Terminating" in answer.status
    with pytest.raises(ApiException) as e:
        await core_api.read_namespaced_config_map("c2", "users")
    assert e.value.status == 404
    assert (await core_api.list_namespaced_pod("users")).items == []


async def test_services_serviceaccounts_and_events(core_api: Any) -> None:
    svc = {"metadata": {"name": "hub"}, "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}}
    created = await core_api.create_namespaced_service("default", svc)
    assert created.spec.cluster_ip
    assert (await core_api.delete_namespaced_service("hub", "default")).metadata.name == "hub"
    await core_api.create_namespaced_service_account("default", {"metadata": {"name": "spawner"}})
    assert (await core_api.read_namespaced_service_account("spawner", "default")).metadata.uid
    event = {
        "metadata": {"name": "alice.1"},
        "involvedObject": {"kind": "Pod", "name": "alice", "namespace": "default"},
        "reason": "Scheduled",
        "message": "assigned",
    }
    await core_api.create_namespaced_event("default", event)
    other = {**event, "metadata": {"name": "bob.1"},
             "involvedObject": {"kind": "Pod", "name": "bob", "namespace": "default"}}  # fmt: skip
    await core_api.create_namespaced_event("default", other)
    found = await core_api.list_namespaced_event(
        "default", field_selector="involvedObject.name=alice,involvedObject.kind=Pod"
    )
    assert [e.reason for e in found.items] == ["Scheduled"]
    raw = await core_api.list_namespaced_event("default", _preload_content=False)
    item = (await raw.json())["items"][0]
    # Both timestamps are always present (KubeSpawner sorts on them).
    assert "lastTimestamp" in item and "eventTime" in item
    assert len((await core_api.list_event_for_all_namespaces()).items) == 2
    with pytest.raises(ApiException) as e:
        await core_api.create_namespaced_event("default", {"metadata": {"name": "bad"}})
    assert e.value.status == 422


async def test_generic_kinds_are_stored_and_read_back(api_client: Any) -> None:
    custom = client.CustomObjectsApi(api_client)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "spawner", "labels": {"app": "podgate"}},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    }
    args = ("rbac.authorization.k8s.io", "v1", "default", "roles")
    created = await custom.create_namespaced_custom_object(*args, role)
    assert created["metadata"]["uid"]
    got = await custom.get_namespaced_custom_object(*args, "spawner")
    assert got["rules"] == role["rules"] and got["kind"] == "Role"
    listed = await custom.list_namespaced_custom_object(*args, label_selector="app=podgate")
    assert listed["kind"] == "RoleList" and len(listed["items"]) == 1
    # A kind kubesim has never heard of, whose name is not its plural capitalised.
    gadget = ("example.org", "v1", "default", "smartgadgets")
    body = {"apiVersion": "example.org/v1", "kind": "SmartGadget", "metadata": {"name": "w"}}
    await custom.create_namespaced_custom_object(*gadget, body)
    patched = await custom.patch_namespaced_custom_object(
        *gadget, "w", {"metadata": {"labels": {"x": "y"}}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    assert patched["metadata"]["labels"] == {"x": "y"} and patched["kind"] == "SmartGadget"
    body["spec"] = {"size": 2}
    body["metadata"]["resourceVersion"] = patched["metadata"]["resourceVersion"]
    replaced = await custom.replace_namespaced_custom_object(*gadget, "w", body)
    assert replaced["spec"] == {"size": 2}
    listed = await custom.list_namespaced_custom_object(*gadget)
    assert listed["kind"] == "SmartGadgetList"
    await custom.delete_namespaced_custom_object(*args, "spawner")
    with pytest.raises(ApiException) as e:
        await custom.get_namespaced_custom_object(*args, "spawner")
    assert e.value.status == 404


async def test_dry_run_create_stores_nothing(api_cluster: SimCluster, core_api: Any) -> None:
    created = await core_api.create_namespaced_pod("default", pod("ghost"), dry_run="All")
    assert created.metadata.name == "ghost"
    with pytest.raises(ApiException) as e:
        await core_api.read_namespaced_pod("ghost", "default")
    assert e.value.status == 404
    await core_api.create_namespaced_pod("default", pod("ghost"))
    with pytest.raises(ApiException) as e:
        await core_api.create_namespaced_pod("default", pod("ghost"), dry_run="All")
    assert e.value.status == 409
    # Dry runs of the other writes answer as the real ones would and change nothing.
    await core_api.patch_namespaced_pod(
        "ghost", "default", {"metadata": {"labels": {"dry": "yes"}}}, dry_run="All"
    )
    await core_api.delete_namespaced_pod("ghost", "default", dry_run="All")
    kept = await core_api.read_namespaced_pod("ghost", "default")
    assert "dry" not in (kept.metadata.labels or {})
    with pytest.raises(ApiException) as e:
        await core_api.delete_namespaced_pod("ghost", "default", dry_run="Some")
    assert e.value.status == 422


async def test_generate_name(core_api: Any) -> None:
    body = {"metadata": {"generateName": "jupyter-"}, "spec": pod("x")["spec"]}
    created = await core_api.create_namespaced_pod("default", body)
    assert created.metadata.name.startswith("jupyter-") and len(created.metadata.name) > 8
