"""The OpenAPI document matches the API: every route is documented and vice versa, and the
real handlers' answers validate against the documented schemas and status codes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import yaml
from jsonschema import Draft202012Validator

from control.api.routes import API, openapi_text
from control.hub import build_hub
from edge.ops import build_ops_app

MakePodgate = Callable[..., Awaitable[Any]]

TOKEN = "admin-token-0123456789"
SETTINGS = {
    "api_tokens": [{"name": "ops", "token": TOKEN, "scopes": ["admin"]}],
    "auth": {"admins": ["root"]},
}
PAGINATED = "application/jupyterhub-pagination+json"
METHODS = {"GET", "POST", "DELETE", "PUT", "PATCH"}


def _document() -> dict[str, Any]:
    return yaml.safe_load(openapi_text())


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), API + path)
        for path, item in document["paths"].items()
        for method in item
        if method.upper() in METHODS
    }


def _public_only(document: dict[str, Any]) -> set[tuple[str, str]]:
    """Routes served on the public port only (the OAuth flow of jupyterhub-singleuser)."""
    return {
        (method.upper(), API + path)
        for path, item in document["paths"].items()
        if item.get("x-podgate-public-only")
        for method in item
        if method.upper() in METHODS
    }


def _served(app: Any) -> set[tuple[str, str]]:
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith(API + "/")
        and route.method in METHODS
    }


async def test_every_route_is_documented_and_every_documented_route_served(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(SETTINGS)
    documented = _documented(_document())
    hub_app = build_hub(pg.control.hub)
    ops_app = build_ops_app(
        table=pg.table,
        metrics=pg.metrics,
        api_token=None,
        is_ready=lambda: True,
        extra_routes=pg.control.add_api_routes,
    )
    assert _served(hub_app) == documented
    assert _served(ops_app) == documented - _public_only(_document())


def _validate(
    document: dict[str, Any], path: str, method: str, status: int, body: Any, content_type: str
) -> None:
    operation = document["paths"][path][method.lower()]
    responses = operation["responses"]
    assert str(status) in responses, f"{method} {path}: {status} is not documented"
    response = responses[str(status)]
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    content = response.get("content")
    if content is None:
        assert body in (b"", None), f"{method} {path} {status}: documented without a body"
        return
    assert content_type in content, f"{method} {path} {status}: {content_type} not documented"
    schema = {**content[content_type]["schema"], "components": document["components"]}
    Draft202012Validator(schema).validate(body)


async def _call(
    base: str,
    method: str,
    path: str,
    *,
    token: str | None = TOKEN,
    accept: str | None = None,
    json_body: Any = None,
) -> tuple[int, Any, str]:
    headers = {"Authorization": f"token {token}"} if token else {}
    if accept:
        headers["Accept"] = accept
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, base + API + path, headers=headers, json=json_body) as response,
    ):
        raw = await response.read()
        content_type = response.content_type
        if content_type == "application/json":
            body: Any = json.loads(raw)
            if accept == PAGINATED and isinstance(body, dict) and "_pagination" in body:
                content_type = PAGINATED
            return response.status, body, content_type
        return response.status, raw, content_type


async def test_answers_of_the_main_calls_validate(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    document = _document()
    base = pg.ops_url
    calls: list[tuple[str, str, str, dict[str, Any]]] = [
        ("GET", "/", "/", {"token": None}),
        ("GET", "/user", "/user", {}),
        ("GET", "/user", "/user", {"token": "wrong-token-000"}),
        ("POST", "/users/{name}", "/users/ada", {}),
        ("POST", "/users/{name}", "/users/ada", {}),
        ("POST", "/users", "/users", {"json_body": {"usernames": ["bob", "cyd"]}}),
        ("POST", "/users", "/users", {"json_body": {}}),
        ("POST", "/users/{name}/server", "/users/ada/server", {}),
        ("POST", "/users/{name}/server", "/users/ghost/server", {}),
        ("POST", "/users/{name}/server", "/users/bob/server", {"json_body": {"x": 1}}),
        ("GET", "/users/{name}", "/users/root", {}),
        ("GET", "/users/{name}", "/users/ghost", {}),
        ("GET", "/users", "/users?limit=2", {"accept": PAGINATED}),
        ("GET", "/users", "/users?state=nonsense", {}),
        ("GET", "/users", "/users", {}),
        ("GET", "/users/{name}/server/progress", "/users/cyd/server/progress", {}),
    ]
    for method, template, path, options in calls:
        status, body, content_type = await _call(base, method, path, **options)
        _validate(document, template, method, status, body, content_type)
    for _ in range(300):  # a running server's model too
        if pg.control.spawner.status("ada").state == "running":
            break
        await asyncio.sleep(0.05)
    for method, template, path, options in (
        ("GET", "/users/{name}", "/users/ada", {}),
        ("GET", "/users", "/users?state=ready", {"accept": PAGINATED}),
        ("DELETE", "/users/{name}/server", "/users/ada/server", {}),
        ("DELETE", "/users/{name}", "/users/ada", {}),
        ("DELETE", "/users/{name}", "/users/ada", {}),
    ):
        status, body, content_type = await _call(base, method, path, **options)
        _validate(document, template, method, status, body, content_type)


async def test_the_document_is_served(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(SETTINGS)
    for base in (pg.public_url, pg.ops_url):
        status, body, content_type = await _call(base, "GET", "/openapi.yaml", token=None)
        assert status == 200 and content_type == "application/yaml"
        assert yaml.safe_load(body)["openapi"].startswith("3.")
