"""Record a real kube-apiserver's OpenAPI documents as kubesim's package data.

    python3 tests/realkube/record_openapi.py

Starts `realkube all` (building it first if needed), then writes into
kubesim/openapi_data/: v3/<group-version>.json.gz for each group-version
kubesim serves, exactly the bytes the real server sent; v2.json.gz, the v2
document cut down to the same group-versions (paths, and the definitions they
and those kinds refer to); v2.pb.gz, that document in the protobuf form
kubectl downloads (made by the real server's own encoder, `realkube
openapi-v2-proto`); VERSION, the release recorded. gzip with no timestamp, so
re-recording the same release changes no byte.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from realkube_kit import RealKube, build_realkube, start_realkube, version_of  # noqa: E402

from kubesim.openapi import DATA, v3_file  # noqa: E402
from kubesim.resources import GROUPS  # noqa: E402


def served_group_versions() -> list[str]:
    return ["api/v1", *(f"apis/{group}/{version}" for group, (version, _) in GROUPS.items())]


def fetch(kube: RealKube, path: str, accept: str = "application/json") -> bytes:
    status, body = kube.get(path, accept=accept)
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {body[:300]!r}")
    return body


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            found.add(ref.removeprefix("#/definitions/"))
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def cut_v2(document: dict[str, Any], group_versions: list[str]) -> dict[str, Any]:
    """The v2 document with only these group-versions' paths and the definitions they need."""
    prefixes = tuple(f"/{gv}/" for gv in group_versions)
    paths = {p: v for p, v in document["paths"].items() if p.startswith(prefixes)}
    wanted = {gv.removeprefix("api/").removeprefix("apis/") for gv in group_versions}
    definitions = document["definitions"]
    keep: set[str] = set()
    _refs(paths, keep)
    for name, schema in definitions.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            group_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            if group_version in wanted:
                keep.add(name)
    while True:  # the closure: definitions referring to further definitions
        more: set[str] = set()
        _refs([definitions[name] for name in keep], more)
        if more <= keep:
            break
        keep |= more
    return {**document, "paths": paths, "definitions": {n: definitions[n] for n in sorted(keep)}}


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    print(f"{path.relative_to(ROOT)}: {len(data)} bytes, {path.stat().st_size} gzipped")


def record(kube: RealKube, binary: Path) -> None:
    available = json.loads(fetch(kube, "/openapi/v3"))["paths"]
    group_versions = [gv for gv in served_group_versions() if gv in available]
    for old in (DATA / "v3").glob("*.json.gz"):
        old.unlink()
    for gv in group_versions:
        write(DATA / v3_file(gv), fetch(kube, available[gv]["serverRelativeURL"]))
    v2 = cut_v2(json.loads(fetch(kube, "/openapi/v2")), group_versions)
    v2_json = json.dumps(v2, separators=(",", ":")).encode()
    protobuf = subprocess.run(
        [str(binary), "openapi-v2-proto"], input=v2_json, capture_output=True, check=True
    ).stdout
    write(DATA / "v2.json.gz", v2_json)
    write(DATA / "v2.pb.gz", protobuf)
    (DATA / "VERSION").write_text(version_of(kube) + "\n")


def main() -> None:
    binary = build_realkube()
    with tempfile.TemporaryDirectory(prefix="realkube-") as state:
        kube = start_realkube(binary, Path(state))
        try:
            record(kube, binary)
        finally:
            kube.stop()


if __name__ == "__main__":
    main()
