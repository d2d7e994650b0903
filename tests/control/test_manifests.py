"""The user's Pod and claim as dicts (no cluster), and one round trip through kubesim."""

from __future__ import annotations

from typing import Any

import pytest

from control import names
from control.manifests import (
    POD_SELECTOR,
    pod_manifest,
    pod_profile,
    pod_token,
    pod_user,
    pvc_manifest,
    server_url,
)
from control.settings import Profile, Resources, SpawnerSettings, Storage
from routes import normalise_path


def container(pod: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod["spec"]["containers"]
    return only


def env_of(pod: dict[str, Any]) -> dict[str, Any]:
    return {var["name"]: var.get("value", var.get("valueFrom")) for var in container(pod)["env"]}


def test_pod_has_deterministic_name_labels_and_raw_user_annotation() -> None:
    settings = SpawnerSettings(namespace="users", extra_labels={"team": "blue"})
    pod = pod_manifest("ada@example.org", settings, None, "tok")
    meta = pod["metadata"]
    assert (
        meta["name"]
        == names.pod_name("ada@example.org")
        == pod_manifest("ada@example.org", settings, None, "other")["metadata"]["name"]
    )
    assert meta["namespace"] == "users"
    assert meta["labels"]["app.kubernetes.io/name"] == "podgate"
    assert meta["labels"]["app.kubernetes.io/component"] == "singleuser-server"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "podgate"
    assert meta["labels"][names.USER_LABEL] == names.user_label("ada@example.org")
    assert meta["labels"]["team"] == "blue"
    assert meta["annotations"][names.USER_ANNOTATION] == "ada@example.org"
    assert pod_user(pod) == "ada@example.org"
    assert pod_token(pod) == "tok"
    assert pod_profile(pod) is None
    for pair in POD_SELECTOR.split(","):
        key, value = pair.split("=")
        assert meta["labels"][key] == value


def test_extra_labels_cannot_hide_whose_pod_it_is() -> None:
    settings = SpawnerSettings(extra_labels={names.USER_LABEL: "mallory"})
    pod = pod_manifest("ada", settings, None, "t")
    assert pod["metadata"]["labels"][names.USER_LABEL] == "ada"


def test_jupyter_server_binds_pod_ip_with_base_url_and_token() -> None:
    settings = SpawnerSettings(image="img:1", cmd=("start.sh",), args=("--debug",), port=9999)
    pod = pod_manifest("ada", settings, None, "secret-token")
    c = container(pod)
    assert c["name"] == "notebook"
    assert c["image"] == "img:1"
    assert c["command"] == ["start.sh"]
    assert c["args"][:4] == [
        "--debug",
        "--ServerApp.ip=$(POD_IP)",
        "--ServerApp.port=9999",
        "--ServerApp.base_url=/user/ada/",
    ]
    assert "--ServerApp.allow_remote_access=True" in c["args"]
    assert c["ports"][0]["containerPort"] == 9999
    env = env_of(pod)
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["PODGATE_USER"] == env["JUPYTERHUB_USER"] == "ada"
    assert env["PODGATE_BASE_URL"] == env["JUPYTERHUB_SERVICE_PREFIX"] == "/user/ada/"
    assert env["PODGATE_POD_TOKEN"] == env["JUPYTER_TOKEN"] == "secret-token"
    # docker-stacks would run jupyterhub-singleuser against a hub that is not there.
    assert "JUPYTERHUB_API_TOKEN" not in env
    probe = c["readinessProbe"]["httpGet"]
    assert probe == {"path": "/user/ada/api", "port": 9999}


def test_plain_server_gets_no_jupyter_args_no_command_and_no_probe() -> None:
    settings = SpawnerSettings(jupyter_args=False, readiness_path=None)
    c = container(pod_manifest("ada", settings, None, "t"))
    assert "args" not in c and "command" not in c and "readinessProbe" not in c


def test_configured_env_is_kept_but_cannot_change_the_token() -> None:
    settings = SpawnerSettings(env={"A": "1", "B": "settings", "PODGATE_POD_TOKEN": "evil"})
    profile = Profile(slug="gpu", display_name="GPU", env={"B": "profile"})
    env = env_of(pod_manifest("ada", settings, profile, "real"))
    assert env["A"] == "1"
    assert env["B"] == "profile"
    assert env["PODGATE_POD_TOKEN"] == "real"


def test_security_context_and_service_account() -> None:
    """What Pod Security "restricted" asks (tests/realkube has the real admission say so)."""
    settings = SpawnerSettings(run_as_user=1234, run_as_group=55, fs_group=99)
    pod = pod_manifest("ada", settings, None, "t")
    assert container(pod)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    spec = pod["spec"]
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1234,
        "runAsGroup": 55,
        "fsGroup": 99,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in spec
    assert spec["restartPolicy"] == "OnFailure"
    assert spec["terminationGracePeriodSeconds"] == 30
    with_sa = pod_manifest("ada", SpawnerSettings(service_account="nb"), None, "t")["spec"]
    assert with_sa["serviceAccountName"] == "nb"
    assert with_sa["automountServiceAccountToken"] is True


def test_default_user_and_groups_are_the_jupyter_images_own() -> None:
    sc = pod_manifest("ada", SpawnerSettings(), None, "t")["spec"]["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"]) == (1000, 100, 100)


def test_a_profile_may_pick_another_non_root_user() -> None:
    settings = SpawnerSettings(run_as_user=1000)

    def uid(profile: Profile) -> int:
        return int(
            pod_manifest("ada", settings, profile, "t")["spec"]["securityContext"]["runAsUser"]
        )

    assert uid(Profile(slug="r", display_name="R", run_as_user=1001)) == 1001
    assert uid(Profile(slug="p", display_name="P")) == 1000


@pytest.mark.parametrize("uid", [0, -1])
def test_root_or_no_user_is_refused(uid: int) -> None:
    with pytest.raises(ValueError, match="run_as_user"):
        SpawnerSettings(run_as_user=uid)
    with pytest.raises(ValueError, match="run_as_user"):
        Profile(slug="root", display_name="Root", run_as_user=uid)


def test_profile_wins_for_image_resources_and_merges_selectors() -> None:
    settings = SpawnerSettings(
        image="base:1",
        resources=Resources(cpu_request="100m", memory_limit="1Gi"),
        node_selector={"pool": "users", "zone": "a"},
        tolerations=({"key": "users", "operator": "Exists"},),
        extra_labels={"team": "blue"},
    )
    profile = Profile(
        slug="big",
        display_name="Big",
        image="big:2",
        resources=Resources(cpu_request="2", cpu_limit="4", memory_request="8Gi"),
        node_selector={"pool": "big"},
        tolerations=({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},),
        extra_labels={"size": "big"},
    )
    pod = pod_manifest("ada", settings, profile, "t")
    c = container(pod)
    assert c["image"] == "big:2"
    assert c["resources"] == {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "4"}}
    assert pod["spec"]["nodeSelector"] == {"pool": "big", "zone": "a"}
    assert pod["spec"]["tolerations"] == [
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    labels = pod["metadata"]["labels"]
    assert labels["team"] == "blue" and labels["size"] == "big"
    assert labels["podgate.io/profile"] == "big"
    assert pod_profile(pod) == "big"

    plain = pod_manifest("ada", settings, None, "t")
    assert container(plain)["image"] == "base:1"
    assert container(plain)["resources"] == {
        "requests": {"cpu": "100m"},
        "limits": {"memory": "1Gi"},
    }
    assert plain["spec"]["tolerations"] == [{"key": "users", "operator": "Exists"}]


def test_storage_mounts_the_users_claim() -> None:
    settings = SpawnerSettings(storage=Storage(size="5Gi", mount_path="/home/me"))
    pod = pod_manifest("ada", settings, None, "t")
    claim = names.pvc_name("ada")
    assert pod["spec"]["volumes"] == [
        {"name": "home", "persistentVolumeClaim": {"claimName": claim}}
    ]
    assert container(pod)["volumeMounts"] == [{"name": "home", "mountPath": "/home/me"}]
    assert "volumes" not in pod_manifest("ada", SpawnerSettings(), None, "t")["spec"]


def test_pvc_manifest() -> None:
    settings = SpawnerSettings(
        namespace="users",
        storage=Storage(size="5Gi", storage_class="fast", access_modes=("ReadWriteMany",)),
    )
    pvc = pvc_manifest("ada", settings)
    assert pvc["kind"] == "PersistentVolumeClaim"
    assert pvc["metadata"]["name"] == names.pvc_name("ada")
    assert pvc["metadata"]["namespace"] == "users"
    assert pvc["metadata"]["annotations"][names.USER_ANNOTATION] == "ada"
    assert pvc["metadata"]["labels"][names.USER_LABEL] == "ada"
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "fast",
    }
    default_class = pvc_manifest("ada", SpawnerSettings(storage=Storage()))["spec"]
    assert "storageClassName" not in default_class
    with pytest.raises(ValueError, match="no storage"):
        pvc_manifest("ada", SpawnerSettings())


@pytest.mark.parametrize("user", ["ada", "a.b@x.org", "a+b", "élodie", "名前"])
def test_server_url_decodes_back_to_the_user(user: str) -> None:
    url = server_url(user)
    assert url.isascii()
    assert normalise_path(url) == f"/user/{user}/"


def test_readers_tolerate_foreign_pods() -> None:
    assert pod_user({}) is None
    assert pod_token({"spec": {"containers": [{"name": "x"}]}}) is None
    assert pod_user({"metadata": {"annotations": {names.USER_ANNOTATION: ""}}}) is None


async def test_kubesim_accepts_the_pod_and_claim(kube: Any) -> None:
    settings = SpawnerSettings(
        namespace="podgate",
        image="kubesim/echo",
        jupyter_args=False,
        readiness_path=None,
        resources=Resources(cpu_request="100m", memory_limit="256Mi"),
        storage=Storage(size="1Gi"),
        extra_annotations={"team": "blue"},
    )
    claim = await kube.create("persistentvolumeclaims", "podgate", pvc_manifest("élodie", settings))
    created = await kube.create("pods", "podgate", pod_manifest("élodie", settings, None, "tok"))
    assert created["metadata"]["name"] == names.pod_name("élodie")
    assert claim["metadata"]["name"] == names.pvc_name("élodie")
    listed = await kube.list("pods", "podgate", label_selector=POD_SELECTOR)
    assert [pod_user(p) for p in listed.items] == ["élodie"]
    assert pod_token(listed.items[0]) == "tok"
