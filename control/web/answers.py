"""How the hub answers: HTML pages, redirects, and the one place errors become responses."""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from control.errors import (
    BadProfile,
    BadServerName,
    BadUserName,
    ClusterNotSynced,
    KubeError,
    SpawnFailed,
    SpawnLimitReached,
)
from control.pages import error_page, too_many_spawns_page

log = logging.getLogger(__name__)

API_PREFIX = "/hub/api/"


def html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", headers=headers)


def redirect(location: str, status: int = 302) -> web.Response:
    """A redirect to a local path (callers make sure it is one); 303 after a POST."""
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps({"status": status, "message": message})
    return web.Response(text=body, status=status, content_type="application/json", headers=headers)


def answer(request: web.Request, status: int, message: str, **page: object) -> web.Response:
    """An error answer: JSON under /hub/api/, else a page; `retry_after` (s) adds the header."""
    headers = {}
    retry_after = page.get("retry_after")
    if isinstance(retry_after, int | float):
        headers["Retry-After"] = str(max(1, round(retry_after)))
    if request.path.startswith(API_PREFIX):
        return json_error(status, message, headers)
    if status == 429 and isinstance(retry_after, int | float):
        return html(too_many_spawns_page(retry_after, retry_url=request.path_qs), status, headers)
    if isinstance(retry_after, int | float):
        # The page tries again by itself (meta refresh), without JavaScript.
        return html(error_page(status, message, retry_after=retry_after), status, headers)
    return html(error_page(status, message), status, headers)


@web.middleware
async def control_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ControlErrors a handler did not answer itself, as pages (or JSON under /hub/api/)."""
    try:
        return await handler(request)
    except BadUserName as e:
        return answer(request, 400, str(e))
    except (BadProfile, BadServerName) as e:
        return answer(request, 400, str(e))
    except SpawnLimitReached as e:
        return answer(request, 429, str(e), retry_after=e.retry_after)
    except ClusterNotSynced as e:
        return answer(request, 503, str(e), retry_after=e.retry_after)
    except SpawnFailed as e:
        return answer(request, 503, e.message)
    except KubeError as e:
        log.warning("%s %s: Kubernetes API: %s", request.method, request.path, e)
        return answer(
            request, 503, "The cluster is not answering right now. Try again in a minute."
        )
