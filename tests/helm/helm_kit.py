"""The chart through the real helm binary, and its objects set beside kustomize's.

`HELM` names the binary (tests/run exports it from tests/helm/build). The
comparison with `kubectl kustomize deploy/` removes exactly what differs by
construction (GENERATED_NAME's hash suffixes, HELM_ONLY labels and
annotations) and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "chart"
HELM_SECONDS = 120

Obj = dict[str, Any]

# kustomize's generators append a content hash to these names; the chart keeps
# fixed names and rolls the Deployment with checksum annotations instead.
GENERATED_NAME = re.compile(r"\b(podgate-(?:config|secrets|grafana-dashboard))-[a-z0-9]{10}\b")
HELM_ONLY_LABELS = ("app.kubernetes.io/managed-by", "helm.sh/chart")
HELM_ONLY_ANNOTATIONS = ("checksum/config", "checksum/secrets", "helm.sh/resource-policy")


def helm_binary() -> Path:
    """$HELM; a skip when unset, except under PODGATE_NO_SKIPS=1 where that fails."""
    given = os.environ.get("HELM")
    if given:
        return Path(given)
    why = "needs HELM (export HELM=$(bash tests/helm/build), as tests/run does)"
    if os.environ.get("PODGATE_NO_SKIPS") == "1":
        pytest.fail(why)
    pytest.skip(why)


def run_helm(
    helm: Path, *args: str, ok: bool = True, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """helm with its config, cache and data under `home` (none: helm's own defaults)."""
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
    if home is not None:
        env |= {f"HELM_{k}_HOME": str(home / k.lower()) for k in ("CONFIG", "CACHE", "DATA")}
    done = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=HELM_SECONDS, check=False,
        env=env,
    )  # fmt: skip
    if ok:
        assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr}"
    return done


def template(
    helm: Path, namespace: str = "podgate", values: list[Path] = (), sets: list[str] = ()
) -> list[Obj]:
    """`helm template` of the chart, as objects."""
    args = ["template", "podgate", str(CHART), "--namespace", namespace]
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    return [doc for doc in yaml.safe_load_all(run_helm(helm, *args).stdout) if doc]


def normalized(obj: Obj) -> Obj:
    """`obj` without what differs between the two tools by construction."""
    obj = json.loads(GENERATED_NAME.sub(r"\1", json.dumps(obj)))
    for meta in metadatas(obj):
        for key, dropped in (("labels", HELM_ONLY_LABELS), ("annotations", HELM_ONLY_ANNOTATIONS)):
            found = meta.get(key)
            if found is None:
                continue
            for name in dropped:
                found.pop(name, None)
            if not found:
                del meta[key]
    return obj


def metadatas(obj: Obj) -> list[Obj]:
    """The object's metadata and its pod template's."""
    found = [obj["metadata"]]
    template = obj.get("spec", {}).get("template")
    if isinstance(template, dict) and "metadata" in template:
        found.append(template["metadata"])
    return found


def key_of(obj: Obj) -> tuple[str, str]:
    return obj["kind"], GENERATED_NAME.sub(r"\1", obj["metadata"]["name"])


def by_key(objects: list[Obj]) -> dict[tuple[str, str], Obj]:
    keyed = {key_of(o): normalized(o) for o in objects}
    assert len(keyed) == len(objects), "two objects of one kind share a name"
    return keyed
