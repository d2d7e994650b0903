"""SpentCodes: which OAuth authorization codes were already exchanged, at any replica.

A code is self-contained (control.oauth_grants) but must work once only. Its
nonce is written, until the code's expiry, into the data of the user's record
ConfigMap (control.user_records) under `oauth-spent-codes` (JSON nonce ->
expiry), which every replica already watches; the record informer feeds
`observe`. A spend is refused when the nonce is known here or in the record.

The write carries the record's resourceVersion: on a real API server two
replicas spending the same code at once meet at a 409 Conflict, and the
loser reads the record again and sees the nonce. (kubesim ignores that
precondition on patches; there the local set still stops a replay on the
same replica, and the watch carries the nonce to the others.) A write that
fails raises KubeError: a code that cannot be recorded is not exchanged.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from control import names
from control.errors import AlreadyExists, Conflict, NotFound
from control.kube import Kube, Object
from control.user_records import parse_record, record_manifest

log = logging.getLogger(__name__)

SPENT_KEY = "oauth-spent-codes"
MAX_ATTEMPTS = 4  # conflicts with other writers of the record before giving up


def spent_in(obj: Object) -> dict[str, float]:
    """The unexpired-or-not nonces a record lists (anything unreadable counts as none)."""
    text = (obj.get("data") or {}).get(SPENT_KEY)
    try:
        data = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}


class SpentCodes:
    """The record informer's listener plus the write that spends a code."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self._kube = kube
        self._namespace = namespace
        self._records: dict[str, tuple[str, dict[str, float]]] = {}  # user -> (rv, spent)
        self._local: dict[str, float] = {}  # nonces spent here (before any write answers)

    def observe(self, kind: str, obj: Object, old: Object | None) -> None:
        record = parse_record(obj)
        if record is None:
            return
        if kind == "DELETED":
            self._records.pop(record.user, None)
            return
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        self._records[record.user] = (version, spent_in(obj))

    def is_spent(self, user: str, nonce: str) -> bool:
        return nonce in self._local or nonce in self._records.get(user, ("", {}))[1]

    async def spend(self, user: str, nonce: str, expires: float, now: float) -> bool:
        """Mark the code spent everywhere; False if it already was (a replay)."""
        if self.is_spent(user, nonce):
            return False
        # Taken here before any await: a concurrent exchange on this replica loses now.
        self._local = {n: e for n, e in self._local.items() if e > now}
        self._local[nonce] = expires
        name = names.record_name(user)
        for _ in range(MAX_ATTEMPTS):
            version, spent = self._records.get(user, ("", {}))
            if nonce in spent:
                return False
            kept = {n: e for n, e in spent.items() if e > now}
            kept[nonce] = expires
            data = {SPENT_KEY: json.dumps(kept, separators=(",", ":"))}
            try:
                if version:
                    patch: dict[str, Any] = {"metadata": {"resourceVersion": version}}
                    patch["data"] = data
                    answer = await self._kube.patch("configmaps", self._namespace, name, patch)
                else:
                    new = record_manifest(user, now=now, signed_in=False)
                    new["data"].update(data)
                    answer = await self._kube.create("configmaps", self._namespace, new)
            except (Conflict, NotFound, AlreadyExists):
                # Someone else wrote (or removed) the record meanwhile: read it, then decide.
                await self._reread(user, name)
                continue
            self.observe("MODIFIED", answer, None)
            return True
        raise Conflict(409, "Conflict", f"the record of {user!r} kept changing; try again")

    async def _reread(self, user: str, name: str) -> None:
        # A list by name, not a get: podgate's Role grants configmaps list, not get.
        found = await self._kube.list(
            "configmaps", self._namespace, field_selector=f"metadata.name={name}"
        )
        if not found.items:
            self._records.pop(user, None)
            return
        self.observe("MODIFIED", found.items[0], None)
