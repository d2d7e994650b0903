"""HTTP handlers for Kubernetes resources: get, list, watch, create, update, patch, delete.

Each route resolves its URL into a `Target` (resource type, namespace, name,
subresource), decides the verb, lets `ApiContext.admit` apply auth rules and
injected faults, then calls kubesim.verbs and answers in the real wire format
(lists with cached item JSON, Status bodies for errors). Handlers never
touch stored objects except through the store and verbs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kubesim import apply, fieldvalidation, verbs
from kubesim.context import API_CONTEXT, ApiContext
from kubesim.fieldvalidation import mode_of
from kubesim.patch import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from kubesim.podmetrics import API_VERSION as METRICS_API_VERSION
from kubesim.podmetrics import pod_metrics
from kubesim.resources import CORE, ResourceType, group_type
from kubesim.selectors import selector_predicate
from kubesim.status import (
    ApiError,
    bad_request,
    expired,
    method_not_allowed,
    not_found,
    success_status,
    unknown_resource,
    unsupported_media_type,
)
from kubesim.store import Entry
from kubesim.tables import table, wants_table
from kubesim.watch import WatchRequest, stream_watch

Obj = dict[str, Any]


@dataclass(frozen=True)
class Target:
    rt: ResourceType
    namespace: str | None  # None: across all namespaces; "" for cluster-scoped kinds
    name: str | None
    subresource: str = ""


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def json_body(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def flag(request: web.Request, name: str) -> bool:
    # kubernetes_asyncio sends Python booleans as "True".
    return request.query.get(name, "").lower() in ("true", "1")


def int_param(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text in (None, ""):
        return None
    try:
        return int(text)
    except ValueError as e:
        raise bad_request(f"{name} must be an integer, not {text!r}") from e


async def read_json(request: web.Request, kind: str = "") -> Any:
    """The decoded body; kind, when given, words the error as the real decoder does."""
    try:
        return await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        if kind:
            raise bad_request(
                f"the object provided is unrecognized (must be of type {kind}): "
                f"couldn't get version/kind; json parse error: {e}"
            ) from e
        raise bad_request(f"the request body is not valid JSON: {e}") from e


# --- route handlers: URL -> Target --------------------------------------------


async def core_cluster(request: web.Request) -> web.StreamResponse:
    """/api/v1/{resource}[/{name}]: namespaces, or a namespaced kind in all namespaces."""
    rt = CORE.get(request.match_info["resource"])
    if rt is None:
        raise unknown_resource()
    name = request.match_info.get("name")
    if rt.namespaced:
        if name is not None:
            raise unknown_resource()
        return await serve(request, Target(rt, None, None))
    return await serve(request, Target(rt, "", name))


async def core_namespaced(request: web.Request) -> web.StreamResponse:
    """/api/v1/namespaces/{namespace}/{resource}[/{name}[/{subresource}]]."""
    rt = CORE.get(request.match_info["resource"])
    if rt is None or not rt.namespaced:
        raise unknown_resource()
    info = request.match_info
    return await serve(
        request, Target(rt, info["namespace"], info.get("name"), info.get("subresource", ""))
    )


async def group_cluster(request: web.Request) -> web.StreamResponse:
    """/apis/{group}/{version}/{resource}: a namespaced kind across all namespaces."""
    info = request.match_info
    if info["group"] == "metrics.k8s.io":
        return await serve_pod_metrics(request, None, None)
    kind = request.app[API_CONTEXT].store.kind_of(f"{info['group']}/{info['resource']}")
    rt = group_type(info["group"], info["version"], info["resource"], kind)
    return await serve(request, Target(rt, None, None))


async def group_namespaced(request: web.Request) -> web.StreamResponse:
    """/apis/{group}/{version}/namespaces/{namespace}/{resource}[/{name}]."""
    info = request.match_info
    if info["group"] == "metrics.k8s.io":
        if info["resource"] != "pods" or info.get("subresource"):
            raise unknown_resource()
        return await serve_pod_metrics(request, info["namespace"], info.get("name"))
    # A kind unknown to kubesim is named by what was stored, else by the body.
    kind = request.app[API_CONTEXT].store.kind_of(f"{info['group']}/{info['resource']}")
    if kind is None and request.method == "POST" and request.can_read_body:
        body = await read_json(request)
        kind = body.get("kind") if isinstance(body, dict) else None
    rt = group_type(info["group"], info["version"], info["resource"], kind)
    if info.get("subresource"):
        raise unknown_resource()
    return await serve(request, Target(rt, info["namespace"], info.get("name")))


# --- dispatch -----------------------------------------------------------------


def _verb(request: web.Request, target: Target) -> str:
    method = request.method
    if target.name is None:
        if method == "GET":
            return "watch" if flag(request, "watch") else "list"
        verb = {"POST": "create", "DELETE": "deletecollection"}.get(method)
    else:
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
    if verb is None or (target.namespace is None and verb != "list"):
        raise method_not_allowed()
    return verb


async def serve(request: web.Request, target: Target) -> web.StreamResponse:
    ctx = request.app[API_CONTEXT]
    verb = _verb(request, target)
    await ctx.admit(request, verb, target.rt, target.namespace)
    dry_run = _dry_run(request, verb)
    if target.subresource == "log" and target.rt.kind != "Pod":
        raise unknown_resource()
    if target.subresource not in ("", "log") and not (
        target.subresource == "status" and target.rt.has_status
    ):
        raise unknown_resource()
    if verb == "watch":
        return await _watch(request, ctx, target)
    if verb == "list":
        return _list(request, ctx, target)
    if verb == "create":
        return await _create(request, ctx, target)
    # Only the synchronous verb calls run inside the dry run: no other request's
    # commit can fall into it.
    dry: Callable[[], AbstractContextManager[None]] = (
        ctx.store.dry_run if dry_run else contextlib.nullcontext
    )
    if verb == "deletecollection":
        with dry():
            return _delete_collection(request, ctx, target)
    return await _one_object(request, ctx, target, verb, dry)


_OPTIONS_KIND = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions",
                 "delete": "DeleteOptions", "deletecollection": "DeleteOptions"}  # fmt: skip


def _dry_run(request: web.Request, verb: str) -> bool:
    """dryRun=All for any write; another value is the real 422 on the verb's options."""
    given = request.query.getall("dryRun", [])
    if not given or verb not in _OPTIONS_KIND:
        return False
    if given == ["All"]:
        return True
    shown = "[" + ",".join(json.dumps(v) for v in given) + "]"
    message = f'Unsupported value: {shown}: supported values: "All"'
    kind = _OPTIONS_KIND[verb]
    raise ApiError(
        422, "Invalid", f'{kind}.meta.k8s.io "" is invalid: dryRun: {message}',
        {"group": "meta.k8s.io", "kind": kind,
         "causes": [{"reason": "FieldValueNotSupported", "message": message, "field": "dryRun"}]},
    )  # fmt: skip


async def _one_object(
    request: web.Request,
    ctx: ApiContext,
    target: Target,
    verb: str,
    dry: Callable[[], AbstractContextManager[None]],
) -> web.StreamResponse:
    """get, update, patch, delete of one named object."""
    assert target.name is not None and target.namespace is not None
    ns, name = target.namespace, target.name
    if verb == "get":
        entry = ctx.store.entry(target.rt.key, ns, name)
        if entry is None:
            raise not_found(target.rt.resource, name, target.rt.group)
        if target.subresource == "log":
            return _pod_log(request, ctx, entry)
        if wants_table(request.headers.get("Accept", "")):
            include = request.query.get("includeObject", "PartialObjectMetadata")
            meta = {"resourceVersion": entry.obj["metadata"]["resourceVersion"]}
            return json_body(dumps(table(target.rt.kind, [entry.obj], meta, include)))
        return json_body(entry.full_json())
    if target.subresource == "log":
        raise method_not_allowed()
    if verb == "update":
        body = await read_json(request, target.rt.kind)
        unknown = fieldvalidation.check_body(mode_of(request, verb), target.rt, body)
        with dry():
            entry = verbs.replace(ctx.store, target.rt, ns, name, body, target.subresource)
        return fieldvalidation.warn(json_body(entry.full_json()), unknown)
    if verb == "patch" and request.content_type == apply.APPLY_PATCH:
        return await _apply(request, ctx, target, ns, name, dry)
    if verb == "patch":
        content_type = request.content_type
        if content_type not in (MERGE_PATCH, STRATEGIC_MERGE_PATCH, JSON_PATCH):
            raise unsupported_media_type(content_type)
        document = await read_json(request)
        warnings: list[str] = []
        check = fieldvalidation.patch_check(
            mode_of(request, verb), target.rt, content_type, document, warnings
        )
        with dry():
            entry = verbs.patch(
                ctx.store, target.rt, ns, name, content_type, document, target.subresource, check
            )
        return fieldvalidation.warn(json_body(entry.full_json()), warnings)
    return await _delete(request, ctx, target, ns, name, dry)


# --- verbs --------------------------------------------------------------------


def _core_kind(target: Target) -> str:
    """The kind whose field labels a selector may use ("" for kinds served generically)."""
    return target.rt.kind if target.rt.group == "" else ""


def _encode_continue(rv: int, namespace: str, name: str) -> str:
    raw = dumps({"rv": rv, "start": [namespace, name]})
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str, compacted_rv: int) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        rv, (namespace, name) = int(data["rv"]), data["start"]
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise bad_request(f"invalid continue token: continue key is not valid: {e}") from e
    if rv < compacted_rv:
        raise expired(
            "The provided continue parameter is too old to display a consistent list result. "
            "You can start a new list without the continue parameter."
        )
    return rv, (str(namespace), str(name))


def _list(request: web.Request, ctx: ApiContext, target: Target) -> web.Response:
    store = ctx.store
    predicate = selector_predicate(
        request.query.get("labelSelector"), request.query.get("fieldSelector"), _core_kind(target)
    )
    limit = int_param(request, "limit")  # zero or negative: no limit, as the real server
    list_rv = _version_match(request, store.resource_version, store.compacted_rv)
    after: tuple[str, str] | None = None
    if token := request.query.get("continue"):
        list_rv, after = _decode_continue(token, store.compacted_rv)
    items: list[Entry] = []
    last: Entry | None = None
    remaining = 0
    # An older version (a later page, an exact version) lists the state then.
    for entry in store.entries_at(target.rt.key, target.namespace, list_rv):
        meta = entry.obj["metadata"]
        if after is not None and (meta.get("namespace", ""), meta["name"]) <= after:
            continue
        if not predicate(entry.obj):
            continue
        if limit and limit > 0 and len(items) >= limit:
            remaining += 1
            continue
        items.append(entry)
        last = entry
    list_meta: Obj = {"resourceVersion": str(list_rv)}
    if remaining and last is not None:
        meta = last.obj["metadata"]
        list_meta["continue"] = _encode_continue(list_rv, meta.get("namespace", ""), meta["name"])
        if not request.query.get("labelSelector") and not request.query.get("fieldSelector"):
            list_meta["remainingItemCount"] = remaining  # the real server counts only then
    if wants_table(request.headers.get("Accept", "")):
        include = request.query.get("includeObject", "PartialObjectMetadata")
        return json_body(dumps(table(target.rt.kind, [e.obj for e in items], list_meta, include)))
    head = dumps({"kind": target.rt.kind + "List", "apiVersion": target.rt.api_version,
                  "metadata": list_meta})  # fmt: skip
    # Fast path: splice each object's cached JSON instead of re-encoding the list.
    return json_body(head[:-1] + b',"items":[' + b",".join(e.item_json() for e in items) + b"]}")


def _version_match(request: web.Request, current: int, compacted: int) -> int:
    """The version a list shows: the current one, or the exact one asked for."""
    match = request.query.get("resourceVersionMatch")
    if not match:
        return current
    if match not in ("NotOlderThan", "Exact"):
        raise bad_request(f"invalid resourceVersionMatch {match!r}")
    rv = request.query.get("resourceVersion", "")
    if not rv.isdigit():
        raise bad_request("resourceVersionMatch needs a resourceVersion")
    if match == "NotOlderThan":
        return current
    if int(rv) < compacted:
        raise expired(f"too old resource version: {rv} ({compacted + 1})")
    if int(rv) > current:
        raise ApiError(
            504, "Timeout", f"Too large resource version: {rv}, current: {current}",
            {"causes": [{"reason": "ResourceVersionTooLarge",
                         "message": "Too large resource version"}], "retryAfterSeconds": 1},
        )  # fmt: skip
    return int(rv)


async def _watch(request: web.Request, ctx: ApiContext, target: Target) -> web.StreamResponse:
    timeout = int_param(request, "timeoutSeconds")
    resume = request.query.get("resourceVersion", "")
    watch = WatchRequest(
        key=target.rt.key,
        kind=target.rt.kind,
        api_version=target.rt.api_version,
        namespace=target.namespace or None if target.rt.namespaced else None,
        predicate=selector_predicate(
            request.query.get("labelSelector"),
            request.query.get("fieldSelector"),
            _core_kind(target),
        ),
        resource_version=resume,
        timeout_seconds=float(timeout) if timeout and timeout > 0 else None,
        bookmarks=flag(request, "allowWatchBookmarks"),
        force_expired=resume not in ("", "0") and ctx.faults.take_expire_next_watch(),
    )
    return await stream_watch(request, ctx.store, ctx.hub, watch)


async def _apply(
    request: web.Request,
    ctx: ApiContext,
    target: Target,
    namespace: str,
    name: str,
    dry: Callable[[], AbstractContextManager[None]],
) -> web.Response:
    manager = request.query.get("fieldManager", "")
    if not manager:
        raise apply.field_manager_required()
    config = apply.parse(await request.read())
    with dry():
        entry, created = verbs.server_side_apply(
            ctx.store, target.rt, namespace, name, config, manager, flag(request, "force")
        )
    return json_body(entry.full_json(), status=201 if created else 200)


async def _create(request: web.Request, ctx: ApiContext, target: Target) -> web.Response:
    body = await read_json(request, target.rt.kind)
    unknown = fieldvalidation.check_body(mode_of(request, "create"), target.rt, body)
    dry_run = request.query.get("dryRun")
    if dry_run not in (None, "", "All"):
        raise bad_request(f"invalid dryRun {dry_run!r}")
    assert target.namespace is not None
    obj = verbs.create(ctx.store, target.rt, target.namespace, body, dry_run == "All")
    return fieldvalidation.warn(json_body(dumps(obj), status=201), unknown)


async def _delete_options(request: web.Request) -> Obj:
    if not request.can_read_body:
        return {}
    options = await read_json(request)
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise bad_request("DeleteOptions must be a JSON object")
    return options


async def _delete(
    request: web.Request,
    ctx: ApiContext,
    target: Target,
    namespace: str,
    name: str,
    dry: Callable[[], AbstractContextManager[None]],
) -> web.Response:
    options = await _delete_options(request)
    grace = int_param(request, "gracePeriodSeconds")
    if grace is None and options.get("gracePeriodSeconds") is not None:
        grace = int(options["gracePeriodSeconds"])
    current = ctx.store.entry(target.rt.key, namespace, name)
    preconditions = options.get("preconditions") or {}
    if current is not None and preconditions:
        meta = current.obj["metadata"]
        for field, shown, why in (
            ("uid", "UID", "deleted and then recreated"),
            ("resourceVersion", "ResourceVersion", "modified"),
        ):
            if preconditions.get(field) and preconditions[field] != meta.get(field):
                raise ApiError(
                    409, "Conflict",
                    f'Operation cannot be fulfilled on {target.rt.kind} "{name}": the {shown} '
                    f"in the precondition ({preconditions[field]}) does not match the {shown} "
                    f"in record ({meta.get(field)}). The object might have been {why}",
                    {"name": name, "kind": target.rt.kind},
                )  # fmt: skip
    with dry():
        entry, _gone = verbs.delete(ctx.store, target.rt, namespace, name, grace)
    if target.rt.delete_returns_object:
        return json_body(entry.full_json())
    meta = entry.obj["metadata"]
    status = success_status(target.rt.resource, name, meta.get("uid", ""), target.rt.group)
    return json_body(dumps(status))


def _delete_collection(request: web.Request, ctx: ApiContext, target: Target) -> web.Response:
    predicate = selector_predicate(
        request.query.get("labelSelector"), request.query.get("fieldSelector"), _core_kind(target)
    )
    grace = int_param(request, "gracePeriodSeconds")
    assert target.namespace is not None
    deleted: list[bytes] = []
    for entry in list(ctx.store.entries(target.rt.key, target.namespace)):
        if predicate(entry.obj):
            name = entry.obj["metadata"]["name"]
            verbs.delete(ctx.store, target.rt, target.namespace, name, grace)
            deleted.append(entry.item_json())  # as it was: the real list is of the objects found
    head = dumps({"kind": target.rt.kind + "List", "apiVersion": target.rt.api_version,
                  "metadata": {"resourceVersion": str(ctx.store.resource_version)}})  # fmt: skip
    return json_body(head[:-1] + b',"items":[' + b",".join(deleted) + b"]}")


def _pod_log(request: web.Request, ctx: ApiContext, entry: Entry) -> web.Response:
    meta = entry.obj["metadata"]
    containers = [c.get("name") for c in (entry.obj.get("spec") or {}).get("containers") or []]
    container = request.query.get("container") or None
    if container is not None and container not in containers:
        raise bad_request(f"container {container} is not valid for pod {meta['name']}")
    if container is None and len(containers) > 1:
        raise bad_request(
            f"a container name must be specified for pod {meta['name']}, choose one of: "
            f"[{' '.join(str(c) for c in containers)}]"
        )
    text = None
    if ctx.pod_logs is not None:
        text = ctx.pod_logs.logs(
            meta["namespace"], meta["name"], container, int_param(request, "tailLines")
        )
    if text is None:
        name = container or (containers[0] if containers else "")
        raise bad_request(
            f'container "{name}" in pod "{meta["name"]}" is waiting to start: ContainerCreating'
        )
    return web.Response(text=text, content_type="text/plain")


async def serve_pod_metrics(
    request: web.Request, namespace: str | None, name: str | None
) -> web.Response:
    ctx = request.app[API_CONTEXT]
    rt = group_type("metrics.k8s.io", "v1beta1", "pods", None)
    if request.method != "GET":
        raise method_not_allowed()
    await ctx.admit(request, "get" if name else "list", rt, namespace)
    if name is not None and namespace is not None:
        entry = ctx.store.entry("pods", namespace, name)
        metrics = pod_metrics(entry.obj, ctx.pod_usage) if entry else None
        if metrics is None:
            raise not_found("pods", name, "metrics.k8s.io")
        return json_body(dumps(metrics))
    predicate = selector_predicate(request.query.get("labelSelector"), None)
    items = [
        m
        for e in ctx.store.entries("pods", namespace)
        if predicate(e.obj) and (m := pod_metrics(e.obj, ctx.pod_usage)) is not None
    ]
    return json_body(dumps({"kind": "PodMetricsList", "apiVersion": METRICS_API_VERSION,
                            "metadata": {}, "items": items}))  # fmt: skip
