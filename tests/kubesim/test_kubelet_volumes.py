"""Volume directories and how a container's process finds them."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from kubesim.kubelet.environment import ContainerConfigError
from kubesim.kubelet.volumes import VolumeHost, volume_env_name

Obj = dict[str, Any]


def pod(*volumes: Obj, uid: str = "uid-1") -> Obj:
    return {
        "metadata": {"name": "p", "namespace": "users", "uid": uid},
        "spec": {"volumes": list(volumes)},
    }


def no_objects(resource: str, namespace: str, name: str) -> Obj | None:
    return None


def test_claim_directory_outlives_the_pod(tmp_path: Path) -> None:
    host = VolumeHost(tmp_path)
    claim = {"name": "home", "persistentVolumeClaim": {"claimName": "claim-ada"}}
    paths = host.prepare(pod(claim), no_objects)
    assert paths["home"] == tmp_path / "claims" / "users" / "claim-ada"
    (paths["home"] / "notebook.ipynb").write_text("{}")
    host.remove_pod("uid-1")
    again = host.prepare(pod(claim, uid="uid-2"), no_objects)
    assert (again["home"] / "notebook.ipynb").read_text() == "{}"


def test_scratch_and_projected_volumes_go_with_the_pod(tmp_path: Path) -> None:
    secret = {"data": {"token": base64.b64encode(b"t0k").decode()}}

    def lookup(resource: str, namespace: str, name: str) -> Obj | None:
        return secret if (resource, namespace, name) == ("secrets", "users", "creds") else None

    host = VolumeHost(tmp_path)
    paths = host.prepare(
        pod(
            {"name": "scratch", "emptyDir": {}},
            {"name": "creds", "secret": {"secretName": "creds"}},
        ),
        lookup,
    )
    assert paths["scratch"].is_dir()
    assert (paths["creds"] / "token").read_text() == "t0k"
    host.remove_pod("uid-1")
    assert not paths["scratch"].exists() and not paths["creds"].exists()


def test_missing_secret_volume_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ContainerConfigError, match='secret "gone" not found'):
        VolumeHost(tmp_path).prepare(
            pod({"name": "s", "secret": {"secretName": "gone"}}), no_objects
        )


def test_mounts_reach_the_process_as_environment(tmp_path: Path) -> None:
    host = VolumeHost(tmp_path)
    paths = host.prepare(
        pod({"name": "user-home", "persistentVolumeClaim": {"claimName": "c"}}), no_objects
    )
    container = {
        "volumeMounts": [
            {"name": "user-home", "mountPath": "/home/jovyan"},
            {"name": "not-a-volume", "mountPath": "/x"},
        ]
    }
    env = host.mount_env(container, paths)
    assert env == {"KUBESIM_VOLUME_USER_HOME": str(paths["user-home"])}
    sub = host.mount_env(
        {"volumeMounts": [{"name": "user-home", "mountPath": "/w", "subPath": "work"}]}, paths
    )
    assert Path(sub["KUBESIM_VOLUME_USER_HOME"]) == paths["user-home"] / "work"
    assert (paths["user-home"] / "work").is_dir()
    assert volume_env_name("a.b-c") == "KUBESIM_VOLUME_A_B_C"
