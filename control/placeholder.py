"""A stand-in for the control plane until login and spawning exist.

It answers the paths the edge sends users to (/hub/login, /hub/spawn/<name>)
with an honest page instead of a 404, so the edge's redirects can be
followed end to end. It must never pretend to log anyone in.
"""

from __future__ import annotations

import html

from aiohttp import web

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · podgate</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;color:#222}}
h1{{font-size:1.5rem}} code{{background:#f2f2f2;padding:0 .2em}}</style></head>
<body><h1>{title}</h1><p>{message}</p></body></html>
"""


def _page(status: int, title: str, message: str) -> web.Response:
    body = _PAGE.format(title=html.escape(title), message=message)
    return web.Response(status=status, text=body, content_type="text/html")


async def _home(request: web.Request) -> web.Response:
    raise web.HTTPFound("/hub/login")


async def _login(request: web.Request) -> web.Response:
    return _page(
        503,
        "Login is not available yet",
        "This podgate runs its proxy only: the control plane that logs users in "
        "and starts their servers is not part of this build.",
    )


async def _spawn(request: web.Request) -> web.Response:
    name = html.escape(request.match_info["name"])
    return _page(
        503,
        "Servers cannot be started yet",
        f"There is no running server for <code>{name}</code>, and this build of "
        "podgate cannot start one.",
    )


def build_placeholder_hub() -> web.Application:
    app = web.Application()
    app.router.add_get("/", _home)
    app.router.add_get("/hub", _home)
    app.router.add_get("/hub/", _home)
    app.router.add_get("/hub/login", _login)
    app.router.add_get("/hub/spawn/{name}", _spawn)
    return app
