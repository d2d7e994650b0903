"""Label and field selectors, parsed once per request and matched per object.

Parsing raises `ApiError` 400 on malformed input; matching is pure and cheap.
Field selectors are evaluated as dotted paths into the object; for the
core kinds only the field labels the real API server supports are accepted
(any other is its 400 `field label not supported`).
Never mutates the objects it looks at.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubesim.status import bad_request

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]

_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*$")
_CMP_RE = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*({_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")
_SET_NO_PARENS_RE = re.compile(rf"^\s*{_KEY}\s+(?:in|notin)\s+([^(\s][^\s]*)")

_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
# The field labels the real API server supports per core kind (others: common only).
_FIELD_LABELS: dict[str, tuple[str, ...]] = {
    "Pod": (
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs",
        "status.nominatedNodeName",
    ),
    "Event": (
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
    ),
    "Secret": ("type",),
    "Namespace": ("status.phase",),
    "PersistentVolumeClaim": (),
    "Service": (),
    "ConfigMap": (),
    "ServiceAccount": (),
}  # fmt: skip


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str]

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        if self.op in ("=", "in"):
            return labels.get(self.key) in self.values
        # "!=" and "notin" also match objects that lack the key, as in Kubernetes.
        return labels.get(self.key) not in self.values


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside a `( … )` value set."""
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [t for t in terms if t.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse `a=b,c!=d,e in (x,y),f notin (z),g,!h`; empty means everything."""
    requirements: list[Requirement] = []
    for term in _split_terms(text or ""):
        if m := _SET_RE.match(term):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            requirements.append(Requirement(m.group(1), m.group(2), values))
        elif m := _CMP_RE.match(term):
            op = "!=" if m.group(2) == "!=" else "="
            requirements.append(Requirement(m.group(1), op, frozenset([m.group(3)])))
        elif m := _EXISTS_RE.match(term):
            op = "!" if m.group(1) else "exists"
            requirements.append(Requirement(m.group(2), op, frozenset()))
        elif m := _SET_NO_PARENS_RE.match(term):
            raise bad_request(f"unable to parse requirement: found '{m.group(1)}' expected: '('")
        else:
            raise bad_request(f"unable to parse requirement: invalid label selector {term!r}")
    return requirements


@dataclass(frozen=True)
class FieldTerm:
    path: tuple[str, ...]
    equal: bool
    value: str

    def matches(self, obj: Obj) -> bool:
        node: Any = obj
        for part in self.path:
            node = node.get(part) if isinstance(node, dict) else None
        actual = "" if node is None else str(node)
        return (actual == self.value) == self.equal


def parse_field_selector(text: str | None) -> list[FieldTerm]:
    """Parse `metadata.name=x,status.phase!=Running`; empty means everything."""
    terms: list[FieldTerm] = []
    for term in (text or "").split(","):
        if not term.strip():
            continue
        for op, equal in (("!=", False), ("==", True), ("=", True)):
            if op in term:
                field, value = term.split(op, 1)
                if not field.strip():
                    raise bad_request(f"invalid field selector: {term!r}: empty field")
                terms.append(FieldTerm(tuple(field.strip().split(".")), equal, value.strip()))
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
    return terms


def _check_field_labels(kind: str, terms: list[FieldTerm]) -> None:
    if kind not in _FIELD_LABELS:
        return  # kinds kubesim stores generically: any dotted path
    allowed = _COMMON_FIELDS + _FIELD_LABELS[kind]
    for term in terms:
        label = ".".join(term.path)
        if label not in allowed:
            raise bad_request(f"field label not supported: {label}")


def selector_predicate(
    label_selector: str | None, field_selector: str | None, kind: str = ""
) -> Predicate:
    """One predicate for both selectors; an empty selector matches all.

    kind, when a core kind, limits field selectors to the labels it supports.
    """
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector)
    _check_field_labels(kind, fields)
    if not labels and not fields:
        return _match_all

    def matches(obj: Obj) -> bool:
        obj_labels = obj.get("metadata", {}).get("labels") or {}
        return all(r.matches(obj_labels) for r in labels) and all(f.matches(obj) for f in fields)

    return matches


def _match_all(obj: Obj) -> bool:
    return True
