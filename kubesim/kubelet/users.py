"""Which Unix user a pod's processes run as, and whether they can reach a path.

When the kubelet runs as root, each pod runs as an unprivileged uid of its own
(gid the same number, no supplementary groups), as the Littlest JupyterHub
and SystemdSpawner give each user a Unix user: one pod cannot read another's
files, its environment (/proc/<pid>/environ) or signal its processes. The
uid is drawn from a high range by a hash of the pod's claim (of the pod
itself without one) and this node's data dir, so a claim's files keep their
owner while the data dir lives. Not root: every pod runs as this process's
own user and nothing separates them.

Never creates passwd entries: a pod gets HOME, USER and LOGNAME in its
environment instead, which is all Jupyter needs.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Far above any distribution's regular and system users, below 2**31 (some
# tools still hold a uid in a signed 32-bit int).
FIRST_UID = 2_000_000_000
UID_SPAN = 1 << 26


def runs_as_root() -> bool:
    """Whether this process may give pods users of their own."""
    return os.geteuid() == 0


@dataclass(frozen=True)
class PodUser:
    uid: int
    gid: int

    @property
    def name(self) -> str:
        """USER and LOGNAME of the pod's processes (no passwd entry exists)."""
        return f"pod-{self.uid}"


def user_key(pod: dict[str, Any]) -> str:
    """What a uid belongs to: the pod's first claim (its files outlive the pod), else the pod."""
    metadata = pod.get("metadata") or {}
    namespace = metadata.get("namespace", "default")
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            return f"claim/{namespace}/{claim}"
    return f"pod/{namespace}/{metadata.get('name', '')}"


class PodUsers:
    """Hands each key (claim or pod) a uid no other key of this node holds."""

    def __init__(self, salt: str) -> None:
        self._salt = salt
        self._uids: dict[str, int] = {}
        self._owners: dict[int, str] = {}

    def user_for(self, key: str) -> PodUser:
        uid = self._uids.get(key)
        if uid is None:
            digest = hashlib.sha256(f"{self._salt}\0{key}".encode()).digest()
            offset = int.from_bytes(digest[:8], "big") % UID_SPAN
            while FIRST_UID + offset in self._owners:  # taken by another key here: the next
                offset = (offset + 1) % UID_SPAN
            uid = FIRST_UID + offset
            self._uids[key], self._owners[uid] = uid, key
        return PodUser(uid, uid)


def closed_to_others(path: Path) -> Path | None:
    """The first directory on the way to `path` that other users cannot pass, else None.

    A pod's user is neither the owner nor in the group of anything it did not
    make, so only the "other" permission bits count for it.
    """
    resolved = path.resolve()
    for directory in reversed(resolved.parents):
        try:
            mode = directory.stat().st_mode
        except OSError:
            return directory
        if not mode & stat.S_IXOTH:
            return directory
    return None


def chown_tree(path: Path, user: PodUser) -> None:
    """Give `path` and everything below it to `user` (symlinks themselves, never their targets)."""
    os.chown(path, user.uid, user.gid, follow_symlinks=False)
    if not path.is_dir() or path.is_symlink():
        return
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), user.uid, user.gid, follow_symlinks=False)
