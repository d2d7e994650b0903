"""Host directories behind a pod's volumes, and how the process finds them.

Each PersistentVolumeClaim is a real directory `<data_dir>/claims/<namespace>/<claim>`
that outlives the pods using it (a restarted or re-created pod sees the same
files). emptyDir, secret and configMap volumes live under the pod's own
directory `<data_dir>/pods/<uid>/` and go away with the pod.

The mountPath is NOT created on the host: every pod shares this machine's
filesystem, so two pods mounting `/home/jovyan` would collide. Instead each
mounted volume's host directory is handed to the container's process as the
environment variable `KUBESIM_VOLUME_<NAME>` (volume name upper-cased,
other characters as `_`; subPath appended), which args may also use as
`$(KUBESIM_VOLUME_<NAME>)`. Never deletes a claim's directory.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from kubesim.kubelet.environment import ContainerConfigError, Lookup, decoded_data

Obj = dict[str, Any]


class MountFailed(ContainerConfigError):
    """A volume cannot be set up yet (its secret or configmap is missing)."""

    def __init__(self, volume: str, reason: str) -> None:
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {reason}')
        self.volume = volume


def volume_env_name(volume: str) -> str:
    return "KUBESIM_VOLUME_" + re.sub(r"[^A-Za-z0-9]", "_", volume).upper()


class VolumeHost:
    """Creates and removes the directories behind pod volumes under one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def claim_dir(self, namespace: str, claim: str) -> Path:
        path = self.data_dir / "claims" / namespace / claim
        path.mkdir(parents=True, exist_ok=True)
        return path

    def pod_dir(self, uid: str) -> Path:
        path = self.data_dir / "pods" / uid
        path.mkdir(parents=True, exist_ok=True)
        return path

    def prepare(self, pod: Obj, lookup: Lookup) -> dict[str, Path]:
        """Make every volume's directory; volume name -> host path.

        Raises MountFailed for a secret or configmap volume whose object does
        not exist (and is not optional); calling again later is safe.
        """
        namespace = pod["metadata"].get("namespace", "default")
        uid = pod["metadata"].get("uid") or pod["metadata"]["name"]
        paths: dict[str, Path] = {}
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = volume["name"]
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"].get("claimName", "")
                paths[name] = self.claim_dir(namespace, claim)
            elif "secret" in volume or "configMap" in volume:
                try:
                    paths[name] = self._projected(volume, namespace, uid, lookup)
                except ContainerConfigError as e:
                    raise MountFailed(name, str(e)) from e
            else:  # emptyDir and anything we do not model: a fresh scratch dir
                path = self.pod_dir(uid) / "volumes" / name
                path.mkdir(parents=True, exist_ok=True)
                paths[name] = path
        return paths

    def mount_env(self, container: Obj, paths: dict[str, Path]) -> dict[str, str]:
        """KUBESIM_VOLUME_<NAME> for each of the container's volumeMounts."""
        env = {}
        for mount in container.get("volumeMounts") or []:
            host = paths.get(mount.get("name", ""))
            if host is None:
                continue
            if mount.get("subPath"):
                host = host / mount["subPath"]
                host.mkdir(parents=True, exist_ok=True)
            env[volume_env_name(mount["name"])] = str(host)
        return env

    def remove_pod(self, uid: str) -> None:
        shutil.rmtree(self.data_dir / "pods" / uid, ignore_errors=True)

    def _projected(self, volume: Obj, namespace: str, uid: str, lookup: Lookup) -> Path:
        if "secret" in volume:
            source, resource, name = volume["secret"], "secrets", volume["secret"].get("secretName")
        else:
            source, resource, name = (
                volume["configMap"],
                "configmaps",
                volume["configMap"].get("name"),
            )
        path = self.pod_dir(uid) / "volumes" / volume["name"]
        path.mkdir(parents=True, exist_ok=True)
        obj = lookup(resource, namespace, name or "")
        if obj is None:
            if source.get("optional"):
                return path
            kind = "secret" if resource == "secrets" else "configmap"
            raise ContainerConfigError(f'{kind} "{name}" not found')
        for key, value in decoded_data(obj, resource).items():
            (path / key).write_text(value)
        return path
