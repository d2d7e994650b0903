"""UserRecordStore: every replica's view of the per-user records, and the writes to them.

It listens to the record informer (control.informer over the ConfigMaps
control.user_records selects) and keeps user -> record, plus user ->
not-before for the edge's per-request check. Writes go to Kubernetes and are
applied here as soon as the API answers, so the replica that signs someone
out refuses their cookies at once; the others follow within a watch event.

A not-before only ever rises while the record exists: an older watch event
arriving after our own write must not bring signed-out sessions back. It
never retries, and holds nothing but what the records say.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from control import names
from control.errors import AlreadyExists, Conflict, NotFound
from control.kube import Kube, Object
from control.user_records import (
    REFRESH,
    UserRecord,
    created_patch,
    not_before_from,
    parse_record,
    record_manifest,
    server_patch,
    sign_out_patch,
    signed_in_patch,
)

log = logging.getLogger(__name__)


class UserRecordStore:
    """The records of `namespace`, by user; fed by an informer's listener (`observe`)."""

    def __init__(
        self, kube: Kube, namespace: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._kube = kube
        self._namespace = namespace
        self._clock = clock
        self._records: dict[str, UserRecord] = {}
        self._not_before: dict[str, float] = {}  # the hot path's lookup
        self._users: frozenset[str] | None = None  # listed users, rebuilt on change
        self._versions: dict[str, str] = {}  # user -> the record's resourceVersion
        # Told the user whose sign-out everywhere arrived (their not-before rose).
        self.on_sign_out: Callable[[str], None] | None = None

    # -- reading (no I/O) ----------------------------------------------------------

    def not_before(self, user: str) -> float:
        """Sessions of `user` issued before this (epoch seconds) are ended; 0: none."""
        return self._not_before.get(user, 0.0)

    def get(self, user: str) -> UserRecord | None:
        return self._records.get(user)

    def records(self) -> list[UserRecord]:
        return list(self._records.values())

    def users(self) -> frozenset[str]:
        """Users with a record that was not removed (the same object until one changes)."""
        if self._users is None:
            self._users = frozenset(u for u, r in self._records.items() if not r.removed)
        return self._users

    def observe(self, kind: str, obj: Object, old: Object | None) -> None:
        """The informer's listener: ADDED, MODIFIED, DELETED of a record ConfigMap."""
        record = parse_record(obj)
        if record is None:
            return
        if kind == "DELETED":
            # Someone deleted the record itself: that user's sign-outs are forgotten too.
            self._records.pop(record.user, None)
            self._not_before.pop(record.user, None)
            self._versions.pop(record.user, None)
            self._users = None
            return
        self._apply(record, obj)

    def _apply(self, record: UserRecord, obj: Object | None = None) -> None:
        if obj is not None:
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if isinstance(version, str):
                self._versions[record.user] = version
        known = self._records.get(record.user)
        if known is not None and known.not_before > record.not_before:
            record = replace(record, not_before=known.not_before)
        if known is None or known.removed != record.removed:
            self._users = None
        self._records[record.user] = record
        if record.not_before > self._not_before.get(record.user, 0.0):
            self._not_before[record.user] = record.not_before
            if self.on_sign_out is not None:
                self.on_sign_out(record.user)
        elif known is not None and known.groups != record.groups and self.on_sign_out:
            self.on_sign_out(record.user)  # left an allowed group: their sessions may end

    # -- writing -------------------------------------------------------------------

    def groups(self, user: str) -> frozenset[str]:
        """The groups the identity provider last said `user` is in (none without a record)."""
        record = self._records.get(user)
        return record.groups if record is not None else frozenset()

    async def signed_in(self, user: str, *, data: dict[str, str | None] | None = None) -> None:
        """`user` signed in or was created: make or update their record (KubeError if not).

        `data`: more record data to write with it (groups_data of an identity provider).
        """
        now = self._clock()
        patch, new = signed_in_patch(now), record_manifest(user, now=now)
        if data:
            patch["data"].update(data)
            new["data"].update({k: v for k, v in data.items() if v is not None})
        await self._write(user, patch, new)

    async def claim(self, user: str, data: dict[str, str | None]) -> bool:
        """Write `data` only if the record is still the version this replica last saw.

        False when another writer came first (409 Conflict on a real API server):
        then that writer, typically another replica, has the job. KubeError otherwise.
        """
        version = self._versions.get(user)
        if version is None:
            return False
        patch = {"metadata": {"resourceVersion": version}, "data": dict(data)}
        name = names.record_name(user)
        try:
            answer = await self._kube.patch("configmaps", self._namespace, name, patch)
        except (Conflict, NotFound):
            return False
        record = parse_record(answer)
        if record is not None:
            self._apply(record, answer)
        return True

    async def groups_read(self, user: str, data: dict[str, str | None]) -> None:
        """The provider was asked again (a refresh): write what it said (KubeError if not)."""
        now = self._clock()
        new = record_manifest(user, now=now, signed_in=False)
        new["data"].update({k: v for k, v in data.items() if v is not None})
        await self._write(user, {"data": dict(data)}, new)

    async def created(self, user: str) -> None:
        """`user` was created through the API: make their record, or list them again."""
        now = self._clock()
        await self._write(user, created_patch(), record_manifest(user, now=now, signed_in=False))

    async def sign_out_everywhere(
        self, user: str, *, removed: bool = False, forget_refresh: bool = False
    ) -> float:
        """End every session of `user` issued until now, at every replica; the not-before.

        Raises KubeError if the record could not be written: then nothing was
        ended anywhere but here, and the caller must say so.
        """
        now = self._clock()
        not_before = max(not_before_from(now), self.not_before(user))
        new = record_manifest(user, now=now, signed_in=False, not_before=not_before)
        if removed:
            new["data"].update(sign_out_patch(not_before, removed=True)["data"])
        patch = sign_out_patch(not_before, removed=removed)
        if forget_refresh:  # signed out: no more group refreshes in their name
            patch["data"][REFRESH] = None
        await self._write(user, patch, new)
        return not_before

    async def add_server(self, user: str, server: str) -> None:
        """Remember `user`'s named server `server` at every replica (KubeError if not)."""
        now = self._clock()
        new = record_manifest(user, now=now, signed_in=False)
        new["data"].update(server_patch(server, now)["data"])
        await self._write(user, server_patch(server, now), new)

    async def remove_server(self, user: str, server: str) -> None:
        """Forget `user`'s named server `server` (a no-op without a record)."""
        name = names.record_name(user)
        try:
            answer = await self._kube.patch(
                "configmaps", self._namespace, name, server_patch(server, None)
            )
        except NotFound:
            return
        record = parse_record(answer)
        if record is not None:
            self._apply(record)

    async def _write(self, user: str, patch: Object, new: Object) -> None:
        """Patch the record, or create it if there is none (another replica may race us)."""
        name = names.record_name(user)
        try:
            answer = await self._kube.patch("configmaps", self._namespace, name, patch)
        except NotFound:
            try:
                answer = await self._kube.create("configmaps", self._namespace, new)
            except AlreadyExists:  # made a moment ago elsewhere
                answer = await self._kube.patch("configmaps", self._namespace, name, patch)
        record = parse_record(answer)
        if record is not None:
            self._apply(record, answer)
