"""The real API server's OpenAPI documents, recorded, served at the real paths.

kubectl downloads /openapi/v3 (and /openapi/v2 as protobuf) before `apply` or
`create` with validation on. The documents in openapi_data/ were recorded
from a real kube-apiserver (tests/realkube/record_openapi.py), for the
group-versions kubesim serves. Served as the real server serves them: the
v3 root names each group-version at a `?hash=` URL; a matching hash answers
as immutable, a stale one redirects; ETag and If-None-Match as
http.ServeContent does. This module also hands the schemas to strict field
validation. It never edits a document: what kubectl sees is what was recorded.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from email.utils import formatdate
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web

from kubesim.status import unknown_resource

DATA = Path(__file__).resolve().parent / "openapi_data"
JSON = "application/json"
# kubectl asks with the first name; the server answers with the second.
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
V2_PROTOBUF_ANSWER = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
NO_CACHE = "no-cache, private"  # what the generic API server puts on every answer

Obj = dict[str, Any]


def _read(name: str) -> bytes:
    return gzip.decompress((DATA / name).read_bytes())


def _etag(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest().upper()


def v3_file(group_version: str) -> str:
    """Where the document of `api/v1` or `apis/apps/v1` is stored."""
    return "v3/" + group_version.replace("/", "__") + ".json.gz"


@cache
def v3_documents() -> dict[str, tuple[bytes, str]]:
    """group-version path -> (JSON bytes as recorded, hash)."""
    documents = {}
    for path in sorted((DATA / "v3").glob("*.json.gz")):
        name = path.name.removesuffix(".json.gz").replace("__", "/")
        data = gzip.decompress(path.read_bytes())
        documents[name] = (data, _etag(data))
    return documents


@cache
def _v2() -> tuple[bytes, bytes, str]:
    """JSON, protobuf, and one ETag for both: the hash of the JSON, as the real server."""
    json_doc = _read("v2.json.gz")
    return json_doc, _read("v2.pb.gz"), _etag(json_doc)


@cache
def _schemas_of(group_version: str) -> tuple[dict[str, Obj], dict[tuple[str, str, str], Obj]]:
    """components.schemas of one v3 document, and its kinds by (group, version, kind)."""
    document = v3_documents().get(group_version)
    if document is None:
        return {}, {}
    schemas: dict[str, Obj] = json.loads(document[0]).get("components", {}).get("schemas", {})
    kinds = {}
    for schema in schemas.values():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            kinds[(gvk.get("group", ""), gvk["version"], gvk["kind"])] = schema
    return schemas, kinds


def schema_for(group: str, version: str, kind: str) -> tuple[Obj, dict[str, Obj]] | None:
    """The recorded schema of a kind and the schemas it refers to, or None if not recorded."""
    group_version = f"apis/{group}/{version}" if group else f"api/{version}"
    schemas, kinds = _schemas_of(group_version)
    schema = kinds.get((group, version, kind))
    return (schema, schemas) if schema is not None else None


def _serve_content(request: web.Request, data: bytes, etag: str, content_type: str,
                   cache_control: str = NO_CACHE) -> web.Response:  # fmt: skip
    quoted = f'"{etag}"'
    headers = {"Etag": quoted, "Vary": "Accept", "Cache-Control": cache_control}
    if cache_control != NO_CACHE:
        headers["Expires"] = formatdate(time.time() + 365 * 86400, usegmt=True)
    if quoted in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=data, headers={**headers, "Content-Type": content_type})


def _accepts(request: web.Request, *offered: str) -> str | None:
    """The first offered type the Accept header allows (none or */*: the first)."""
    accept = [part.split(";")[0].strip() for part in request.headers.get("Accept", "").split(",")]
    accept = [a for a in accept if a]
    if not accept or "*/*" in accept or "application/*" in accept:
        return offered[0]
    return next((wanted for wanted in accept if wanted in offered), None)


def _not_acceptable() -> web.Response:
    return web.Response(status=406, headers={"Cache-Control": NO_CACHE, "Vary": "Accept"})


async def serve_v2(request: web.Request) -> web.Response:
    kind = _accepts(request, JSON, V2_PROTOBUF, V2_PROTOBUF_ANSWER)
    if kind is None:
        return _not_acceptable()
    json_doc, protobuf, etag = _v2()
    if kind == JSON:
        return _serve_content(request, json_doc, etag, JSON)
    return _serve_content(request, protobuf, etag, V2_PROTOBUF_ANSWER)


async def serve_v3_root(request: web.Request) -> web.Response:
    paths = {
        name: {"serverRelativeURL": f"/openapi/v3/{name}?hash={etag}"}
        for name, (_, etag) in v3_documents().items()
    }
    # The real server sends this one untyped (Go sniffs it as text) and without an ETag.
    return web.Response(
        body=json.dumps({"paths": paths}, separators=(",", ":")).encode(),
        headers={"Content-Type": "text/plain; charset=utf-8", "Cache-Control": NO_CACHE},
    )


async def serve_v3(request: web.Request) -> web.Response:
    name = request.match_info["group_version"].strip("/")
    document = v3_documents().get(name)
    if document is None:
        raise unknown_resource()
    if _accepts(request, JSON) is None:  # the protobuf form of v3 is not recorded
        return _not_acceptable()
    data, etag = document
    asked = request.query.get("hash")
    if asked and asked != etag:
        raise web.HTTPMovedPermanently(
            f"/openapi/v3/{name}?hash={etag}",
            headers={"Cache-Control": NO_CACHE, "Etag": f'"{etag}"', "Vary": "Accept"},
        )
    # A hashed URL never changes its content: cacheable for good.
    return _serve_content(request, data, etag, JSON, "public, immutable" if asked else NO_CACHE)
