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

Each pod also gets a HOME and working directory of its own: the first claim
its container mounts, else `<data_dir>/pods/<uid>/home`, and a TMPDIR
`<data_dir>/pods/<uid>/tmp`. When pods run as users of their own (the kubelet
is root), the data dir and its `claims`/`pods` levels may be passed but not
listed by them (0711), and each pod's home, tmp, volumes and claims belong
to its user alone (0700); logs stay the kubelet's.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from kubesim.kubelet.environment import ContainerConfigError, Lookup, decoded_data
from kubesim.kubelet.users import PodUser, chown_tree

Obj = dict[str, Any]


class MountFailed(ContainerConfigError):
    """A volume cannot be set up yet (its secret or configmap is missing)."""

    def __init__(self, volume: str, reason: str) -> None:
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {reason}')
        self.volume = volume


def volume_env_name(volume: str) -> str:
    return "KUBESIM_VOLUME_" + re.sub(r"[^A-Za-z0-9]", "_", volume).upper()


class VolumeHost:
    """Creates and removes the directories behind pod volumes under one data dir.

    isolate: pods run as users of their own, so directories are given to them
    and nothing of the kubelet's (logs, other pods') is open to them.
    """

    def __init__(self, data_dir: Path, isolate: bool = False) -> None:
        self.data_dir = data_dir
        self.isolate = isolate
        if isolate:
            self._passable(data_dir)

    def _passable(self, path: Path) -> Path:
        """A directory of the kubelet's that pods' users may pass but not list."""
        path.mkdir(parents=True, exist_ok=True)
        if self.isolate:
            path.chmod(0o711)
        return path

    def _owned(self, path: Path, user: PodUser | None) -> Path:
        """A directory of one pod's user alone."""
        path.mkdir(parents=True, exist_ok=True)
        if user is not None:
            if path.stat().st_uid != user.uid:
                chown_tree(path, user)
            path.chmod(0o700)
        return path

    def claim_dir(self, namespace: str, claim: str, user: PodUser | None = None) -> Path:
        parent = self._passable(self._passable(self.data_dir / "claims") / namespace)
        return self._owned(parent / claim, user)

    def pod_dir(self, uid: str) -> Path:
        return self._passable(self._passable(self.data_dir / "pods") / uid)

    def log_path(self, uid: str, container: str) -> Path:
        logs = self.pod_dir(uid) / "logs"
        logs.mkdir(mode=0o700, exist_ok=True)  # the kubelet writes them; pods never read them
        return logs / f"{container}.log"

    def home(self, uid: str, user: PodUser | None) -> Path:
        """The pod's own HOME when it mounts no claim."""
        return self._owned(self.pod_dir(uid) / "home", user)

    def tmp(self, uid: str, user: PodUser | None) -> Path:
        """The pod's own TMPDIR, removed with the pod."""
        return self._owned(self.pod_dir(uid) / "tmp", user)

    def prepare(self, pod: Obj, lookup: Lookup, user: PodUser | None = None) -> dict[str, Path]:
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
                paths[name] = self.claim_dir(namespace, claim, user)
            elif "secret" in volume or "configMap" in volume:
                try:
                    paths[name] = self._owned(self._projected(volume, namespace, uid, lookup), user)
                except ContainerConfigError as e:
                    raise MountFailed(name, str(e)) from e
            else:  # emptyDir and anything we do not model: a fresh scratch dir
                path = self._passable(self.pod_dir(uid) / "volumes") / name
                paths[name] = self._owned(path, user)
        return paths

    def claim_home(self, pod: Obj, container: Obj, paths: dict[str, Path]) -> Path | None:
        """The host directory of the first claim the container mounts (subPath applied)."""
        claims = {
            volume.get("name")
            for volume in (pod.get("spec") or {}).get("volumes") or []
            if "persistentVolumeClaim" in volume
        }
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") in claims and mount["name"] in paths:
                host = paths[mount["name"]]
                return host / mount["subPath"] if mount.get("subPath") else host
        return None

    def mount_env(
        self, container: Obj, paths: dict[str, Path], user: PodUser | None = None
    ) -> dict[str, str]:
        """KUBESIM_VOLUME_<NAME> for each of the container's volumeMounts."""
        env = {}
        for mount in container.get("volumeMounts") or []:
            host = paths.get(mount.get("name", ""))
            if host is None:
                continue
            if mount.get("subPath"):
                # A key of a configMap or secret volume is a file: mounted as it is.
                sub = host / mount["subPath"]
                host = sub if sub.is_file() else self._owned(sub, user)
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
        path = self._passable(self.pod_dir(uid) / "volumes") / volume["name"]
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
