"""The in-memory object store: objects, resourceVersions, history, subscribers.

One global resourceVersion counter for every kind, as etcd gives Kubernetes.
Each change is kept in a bounded history window so watches can resume from
a version; a version older than the window is "expired" (410). Stored
objects are never mutated after they are committed: every change stores a
new dict, which lets history, watch streams and cached JSON share them.

This module implements the `ObjectStore` protocol the kubelet uses. It does
storage mechanics only (identity, versions, notification); API semantics
(defaults, validation, graceful deletion) live in kubesim.verbs. It must
never do I/O.
"""

from __future__ import annotations

import bisect
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubesim.contracts import ChangeCallback
from kubesim.status import already_exists, conflict, not_found

Obj = dict[str, Any]

log = logging.getLogger(__name__)

# Kinds of the core resources the kubelet addresses by plural name.
CORE_KINDS = {
    "namespaces": "Namespace",
    "pods": "Pod",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "services": "Service",
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "events": "Event",
    "serviceaccounts": "ServiceAccount",
}


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def deep_copy(obj: Obj) -> Obj:
    # A JSON round trip is faster than copy.deepcopy for plain API objects.
    result: Obj = json.loads(_dumps(obj))
    return result


class Entry:
    """A committed object and its lazily cached JSON encodings."""

    __slots__ = ("_full", "_item", "obj")

    def __init__(self, obj: Obj) -> None:
        self.obj = obj
        self._full: bytes | None = None
        self._item: bytes | None = None

    def full_json(self) -> bytes:
        if self._full is None:
            self._full = _dumps(self.obj)
        return self._full

    def item_json(self) -> bytes:
        """The encoding used inside a list: without kind and apiVersion."""
        if self._item is None:
            self._item = _dumps(
                {k: v for k, v in self.obj.items() if k not in ("kind", "apiVersion")}
            )
        return self._item

    def copy(self) -> Obj:
        result: Obj = json.loads(self.full_json())
        return result

    @property
    def resource_version(self) -> int:
        return int(self.obj["metadata"]["resourceVersion"])


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change, as watches replay and stream it."""

    rv: int
    key: str
    namespace: str
    type: str  # ADDED, MODIFIED, DELETED
    entry: Entry
    old: Entry | None


class Store:
    """Objects keyed by resource key ("pods", "apps/deployments"), namespace, name."""

    def __init__(self, history_size: int = 20_000) -> None:
        self._rv = 1
        self._history_size = history_size
        self._history: list[Change] = []
        self._history_rvs: list[int] = []
        self._compacted_rv = 0
        self._objects: dict[str, dict[str, dict[str, Entry]]] = {}
        self._sorted: dict[str, list[tuple[str, str]]] = {}
        self._callbacks: dict[str, list[ChangeCallback]] = {}
        self._listeners: list[Callable[[Change], None]] = []
        self._dry_run = False

    # --- versions and history -------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted_rv(self) -> int:
        """The newest version no longer in the history window (0: nothing dropped)."""
        return self._compacted_rv

    def changes_since(self, rv: int, key: str) -> list[Change]:
        """Changes to `key` after `rv`; callers check `compacted_rv` first."""
        start = bisect.bisect_right(self._history_rvs, rv)
        return [c for c in self._history[start:] if c.key == key]

    def add_listener(self, listener: Callable[[Change], None]) -> Callable[[], None]:
        """Hear every change of every kind (the watch hub uses this)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def compact(self) -> None:
        """Forget all history, so any resume from an older version expires."""
        if self._history:
            self._compacted_rv = self._history[-1].rv
        self._history.clear()
        self._history_rvs.clear()

    # --- reads ----------------------------------------------------------

    def entry(self, key: str, namespace: str, name: str) -> Entry | None:
        return self._objects.get(key, {}).get(namespace, {}).get(name)

    def entries(self, key: str, namespace: str | None = None) -> Iterator[Entry]:
        """Entries in (namespace, name) order, as the API lists them."""
        by_ns = self._objects.get(key, {})
        if namespace is not None:
            names = by_ns.get(namespace, {})
            for name in sorted(names):
                yield names[name]
            return
        order = self._sorted.get(key)
        if order is None:
            order = sorted((ns, name) for ns, names in by_ns.items() for name in names)
            self._sorted[key] = order
        for ns, name in order:
            entry = by_ns.get(ns, {}).get(name)
            if entry is not None:
                yield entry

    def entries_at(self, key: str, namespace: str | None, rv: int) -> list[Entry]:
        """The entries as they were at version `rv` (callers check `compacted_rv` first).

        Undoes, newest first, the changes after `rv` that history still holds.
        """
        if rv >= self._rv:
            return list(self.entries(key, namespace))
        state = {
            (e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"]): e
            for e in self.entries(key, namespace)
        }
        for change in reversed(self.changes_since(rv, key)):
            if namespace is not None and change.namespace != namespace:
                continue
            name = (change.namespace, change.entry.obj["metadata"]["name"])
            if change.old is None:
                state.pop(name, None)
            else:
                state[name] = change.old
        return [state[k] for k in sorted(state)]

    def kind_of(self, key: str) -> str | None:
        """The kind stored under `key`, if any object is (for kinds served generically)."""
        for names in self._objects.get(key, {}).values():
            for entry in names.values():
                kind: str | None = entry.obj.get("kind")
                return kind
        return None

    def resource_keys(self) -> list[str]:
        """Every resource key that has ever held an object."""
        return list(self._objects)

    # --- commits ----------------------------------------------------------

    @contextmanager
    def dry_run(self) -> Iterator[None]:
        """Within: commits answer what they would store, and store nothing (dryRun=All)."""
        self._dry_run = True
        try:
            yield
        finally:
            self._dry_run = False

    def commit(self, key: str, obj: Obj, change_type: str, old: Entry | None) -> Entry:
        """Store `obj` (taking ownership of it) with the next resourceVersion."""
        if self._dry_run:
            # The real dry run keeps the version the object had.
            previous = old.obj["metadata"].get("resourceVersion") if old else None
            if previous:
                obj["metadata"]["resourceVersion"] = previous
            return Entry(obj)
        self._rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        namespace = meta.get("namespace", "")
        by_name = self._objects.setdefault(key, {}).setdefault(namespace, {})
        entry = Entry(obj)
        if change_type == "DELETED":
            by_name.pop(meta["name"], None)
            self._sorted.pop(key, None)
        else:
            if meta["name"] not in by_name:
                self._sorted.pop(key, None)
            by_name[meta["name"]] = entry
        self._record(Change(self._rv, key, namespace, change_type, entry, old))
        return entry

    def _record(self, change: Change) -> None:
        self._history.append(change)
        self._history_rvs.append(change.rv)
        if len(self._history) > 2 * self._history_size:
            drop = len(self._history) - self._history_size
            self._compacted_rv = self._history[drop - 1].rv
            del self._history[:drop]
            del self._history_rvs[:drop]
        for listener in list(self._listeners):
            listener(change)
        for callback in list(self._callbacks.get(change.key, ())):
            try:
                callback(change.type, change.entry.copy())
            except Exception:
                # A subscriber's bug must not fail the API call that made the change.
                log.exception("store subscriber failed on %s %s", change.type, change.key)

    def insert(self, key: str, namespace: str, obj: Obj) -> Entry:
        """Add a new object, filling in the identity fields the server owns."""
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace
        name = meta.get("name", "")
        if name in self._objects.get(key, {}).get(namespace, {}):
            raise already_exists(_plural(key), name, _group(key))
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta.pop("deletionTimestamp", None)
        meta.pop("deletionGracePeriodSeconds", None)
        if not namespace:
            del meta["namespace"]
        return self.commit(key, obj, "ADDED", None)

    def update(self, key: str, namespace: str, obj: Obj, check_version: bool = True) -> Entry:
        """Replace an existing object; a stale metadata.resourceVersion is a Conflict."""
        meta = obj.setdefault("metadata", {})
        name = meta.get("name", "")
        old = self.entry(key, namespace, name)
        if old is None:
            raise not_found(_plural(key), name, _group(key))
        given = meta.get("resourceVersion")
        if check_version and given and given != old.obj["metadata"]["resourceVersion"]:
            raise conflict(_plural(key), name, _group(key))
        # Identity fields belong to the server, whatever the client sent.
        for field in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if field in old.obj["metadata"]:
                meta[field] = old.obj["metadata"][field]
            else:
                meta.pop(field, None)
        if namespace:
            meta["namespace"] = namespace
        return self.commit(key, obj, "MODIFIED", old)

    def delete(self, key: str, namespace: str, name: str) -> Entry:
        old = self.entry(key, namespace, name)
        if old is None:
            raise not_found(_plural(key), name, _group(key))
        return self.commit(key, old.copy(), "DELETED", old)

    # --- the ObjectStore protocol (for the kubelet) ------------------------

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        entry = self.entry(resource, namespace, name)
        return entry.copy() if entry else None

    def list(self, resource: str, namespace: str | None = None) -> list[Obj]:
        return [e.copy() for e in self.entries(resource, namespace)]

    def subscribe(self, resource: str, callback: ChangeCallback) -> Callable[[], None]:
        callbacks = self._callbacks.setdefault(resource, [])
        callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in callbacks:
                callbacks.remove(callback)

        return unsubscribe

    def update_status(self, resource: str, namespace: str, name: str, status: Obj) -> Obj | None:
        old = self.entry(resource, namespace, name)
        if old is None:
            return None
        obj = old.copy()
        obj["status"] = deep_copy(status)
        return self.commit(resource, obj, "MODIFIED", old).copy()

    def set_node_name(self, namespace: str, name: str, node_name: str) -> Obj | None:
        old = self.entry("pods", namespace, name)
        if old is None:
            return None
        obj = old.copy()
        obj.setdefault("spec", {})["nodeName"] = node_name
        return self.commit("pods", obj, "MODIFIED", old).copy()

    def create(self, resource: str, namespace: str, obj: Obj) -> Obj:
        obj = deep_copy(obj)
        obj.setdefault("kind", CORE_KINDS.get(resource, ""))
        obj.setdefault("apiVersion", "v1")
        return self.insert(resource, namespace, obj).copy()

    def replace(self, resource: str, namespace: str, obj: Obj) -> Obj:
        return self.update(resource, namespace, deep_copy(obj)).copy()

    def remove(self, resource: str, namespace: str, name: str) -> Obj | None:
        if self.entry(resource, namespace, name) is None:
            return None
        return self.delete(resource, namespace, name).copy()


def _plural(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _group(key: str) -> str:
    return key.rsplit("/", 1)[0] if "/" in key else ""
