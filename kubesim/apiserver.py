"""The aiohttp application of the simulated Kubernetes API server.

Assembles routes (discovery, core v1, generic groups, metrics.k8s.io, the
/kubesim/faults control), Bearer-token authentication and the translation
of `ApiError` into Status responses. Resource semantics live in rest.py and
verbs.py; this module only wires them. It must never import podgate code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from kubesim import discovery, openapi, rest
from kubesim.context import API_CONTEXT, IDENTITY, ApiContext
from kubesim.status import ApiError, method_not_allowed, unauthorized, unknown_resource

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Readable without a token, as the real server's system:public-info-viewer.
_PUBLIC_PATHS = frozenset({"/version", "/version/", "/healthz", "/livez", "/readyz"})
_MAX_BODY = 3 * 1024 * 1024  # the real API server's request size limit


def _status_response(error: ApiError) -> web.Response:
    return web.Response(
        body=json.dumps(error.status()).encode(),
        status=error.code,
        content_type="application/json",
        headers=error.headers,
    )


@web.middleware
async def status_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure as a Kubernetes Status body."""
    try:
        return await handler(request)
    except ApiError as e:
        return _status_response(e)
    except web.HTTPNotFound:
        return _status_response(unknown_resource())
    except web.HTTPMethodNotAllowed:
        return _status_response(method_not_allowed())
    except web.HTTPRequestEntityTooLarge:
        return _status_response(ApiError(413, "RequestEntityTooLarge", "request is too large"))
    except web.HTTPException:
        raise
    except Exception as e:
        log.exception("kubesim internal error on %s %s", request.method, request.path)
        return _status_response(ApiError(500, "InternalError", f"Internal error occurred: {e}"))


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in _PUBLIC_PATHS:
        return await handler(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    identity = request.app[API_CONTEXT].tokens.get(token) if scheme == "Bearer" else None
    if identity is None:
        raise unauthorized()
    request[IDENTITY] = identity
    return await handler(request)


def _json(obj: Any) -> web.Response:
    return web.json_response(obj)


async def _version(request: web.Request) -> web.Response:
    return _json(discovery.SERVER_VERSION)


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _api(request: web.Request) -> web.Response:
    return _json(discovery.api_versions(f"{request.host}"))


async def _api_v1(request: web.Request) -> web.Response:
    return _json(discovery.core_resources())


async def _apis(request: web.Request) -> web.Response:
    return _json(discovery.api_groups())


async def _api_group(request: web.Request) -> web.Response:
    doc = discovery.api_group(request.match_info["group"])
    if doc is None:
        raise unknown_resource()
    return _json(doc)


async def _group_resources(request: web.Request) -> web.Response:
    doc = discovery.group_resources(request.match_info["group"], request.match_info["version"])
    if doc is None:
        raise unknown_resource()
    return _json(doc)


async def _faults(request: web.Request) -> web.Response:
    """GET shows the fault settings; PUT/POST changes them (see kubesim.faults)."""
    ctx = request.app[API_CONTEXT]
    if request.method in ("PUT", "POST"):
        actions = ctx.faults.update(await rest.read_json(request))
        if actions["drop_watches"]:
            ctx.hub.drop_all()
        if actions["compact"]:
            ctx.store.compact()
        if actions["pause_changed"] and ctx.set_kubelet_paused is not None:
            ctx.set_kubelet_paused(ctx.faults.kubelet_paused)
    return _json(ctx.faults.as_json())


def build_app(context: ApiContext) -> web.Application:
    app = web.Application(middlewares=[status_errors, bearer_auth], client_max_size=_MAX_BODY)
    app[API_CONTEXT] = context
    r = app.router
    for path in ("/version", "/version/"):
        r.add_get(path, _version)
    for path in ("/healthz", "/livez", "/readyz"):
        r.add_get(path, _healthz)
    for path in ("/api", "/api/"):
        r.add_get(path, _api)
    for path in ("/api/v1", "/api/v1/"):
        r.add_get(path, _api_v1)
    for path in ("/apis", "/apis/"):
        r.add_get(path, _apis)
    r.add_get("/openapi/v2", openapi.serve_v2)
    r.add_get("/openapi/v3", openapi.serve_v3_root)
    r.add_get("/openapi/v3/{group_version:.+}", openapi.serve_v3)
    r.add_route("*", "/kubesim/faults", _faults)
    r.add_route("*", "/api/v1/namespaces/{namespace}/{resource}", rest.core_namespaced)
    r.add_route("*", "/api/v1/namespaces/{namespace}/{resource}/{name}", rest.core_namespaced)
    r.add_route(
        "*", "/api/v1/namespaces/{namespace}/{resource}/{name}/{subresource}", rest.core_namespaced
    )
    r.add_route("*", "/api/v1/{resource}", rest.core_cluster)
    r.add_route("*", "/api/v1/{resource}/{name}", rest.core_cluster)
    r.add_get("/apis/{group}", _api_group)
    r.add_get("/apis/{group}/{version}", _group_resources)
    r.add_route("*", "/apis/{group}/{version}/{resource}", rest.group_cluster)
    base = "/apis/{group}/{version}/namespaces/{namespace}/{resource}"
    for suffix in ("", "/{name}", "/{name}/{subresource}"):
        r.add_route("*", base + suffix, rest.group_namespaced)
    return app
