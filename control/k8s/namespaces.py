"""ensure_namespace: make sure a namespace exists, whoever created it first.

It only creates; it never deletes or relabels a namespace someone else owns.
"""

from __future__ import annotations

import contextlib

from control.errors import AlreadyExists
from control.kube import Kube


async def ensure_namespace(kube: Kube, name: str) -> None:
    """Create namespace `name` unless it exists (another replica or an admin may have made it)."""
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    with contextlib.suppress(AlreadyExists):
        await kube.create("namespaces", "", body)
