"""Reading JSON request bodies as JupyterHub does: empty is None, malformed is a 400.

Bodies are bounded by the app's client_max_size; nothing here reads more.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from control.api.callers import ApiError


async def json_body(request: web.Request) -> Any:
    """The decoded JSON body, None when empty (the app's client_max_size bounds it)."""
    declared = request.content_length
    if declared is not None and declared > request.client_max_size:
        # Refused before a byte of it is read (control.web.body_arrival does not wait for it).
        raise web.HTTPRequestEntityTooLarge(
            request.client_max_size, declared, headers={"Connection": "close"}
        )
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Invalid JSON in body of request") from None


def json_answer(data: object, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def empty_answer(status: int) -> web.Response:
    # JupyterHub answers server start/stop with an empty text/plain body.
    return web.Response(status=status, content_type="text/plain")
