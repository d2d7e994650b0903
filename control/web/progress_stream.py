"""GET /hub/api/users/<name>/server/progress: a spawn's progress as Server-Sent Events.

JupyterHub's format, one `data: {json}` per event: progress 0-100, message,
and at the end ready with url, or failed. A running server answers one ready
event at once; a server neither running nor starting is a 400, as JupyterHub
answers. Comment lines keep idle proxies from closing a long wait.

Callers: an API token with read:servers, or the signed-in browser
(control.api.callers). An EventSource cannot send the X-XSRFToken header,
so the progress page puts the form token in the URL (`?_xsrf=`): like every
other cookie call, the stream is closed to a pod's page, which has no token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from control.api.callers import caller_of, require
from control.names import normalise_username
from control.pages import server_url
from control.progress import ProgressEvent
from control.web.answers import json_error
from control.web.context import hub_of

KEEPALIVE_SECONDS = 15.0
PROGRESS_NEEDS_XSRF = True  # cookie callers must show the form token

log = logging.getLogger(__name__)


async def progress(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    caller = caller_of(request, hub, require_xsrf=PROGRESS_NEEDS_XSRF)
    owner = normalise_username(request.match_info["name"])
    require(caller, ("read:servers",), owner)
    status = hub.spawner.status(owner)
    followed = owner in hub.progress
    if status.state == "running" and not followed:
        events: AsyncIterator[dict[str, Any]] = _one(_ready(owner))
    elif followed:
        events = _as_json(hub.progress.follow(owner))
    elif status.state == "failed" and status.failure is not None:
        failed = ProgressEvent(100, f"Spawn failed: {status.failure.message}", failed=True)
        events = _one(failed.as_json())
    else:
        return json_error(400, f"{owner} has no server starting or running")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # a buffering proxy in front would hold events back
        }
    )
    await response.prepare(request)
    try:
        async with contextlib.aclosing(events):
            iterator = aiter(events)
            while True:
                try:
                    event = await asyncio.wait_for(anext(iterator), KEEPALIVE_SECONDS)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write_eof()
    except ConnectionResetError:
        # The page went on (often right after "ready"): normal, not an error.
        log.debug("progress stream of %s closed by the browser", owner)
    return response


def _ready(user: str) -> dict[str, Any]:
    url = server_url(user)
    return ProgressEvent(100, f"Server ready at {url}", ready=True, url=url).as_json()


async def _one(event: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    yield event


async def _as_json(events: AsyncIterator[ProgressEvent]) -> AsyncIterator[dict[str, Any]]:
    async for event in events:
        yield event.as_json()
