"""GET /hub/api/users/<name>/server/progress (and .../servers/<server>/progress for a
named server): a spawn's progress as Server-Sent Events.

JupyterHub's format, one `data: {json}` per event: progress 0-100, message,
and at the end ready with url, or failed. A running server answers one ready
event at once; a server neither running nor starting is a 400, as JupyterHub
answers. Comment lines keep idle proxies from closing a long wait.

Callers: an API token with read:servers, or the signed-in browser
(control.api.callers). An EventSource cannot send the X-XSRFToken header,
so the progress page puts the form token in the URL (`?_xsrf=`), which counts
here only, for a GET that accepts text/event-stream: like every other cookie
call, the stream is closed to a pod's page, which has no token.
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
from control.names import check_server_name, normalise_username, server_key
from control.pages import server_url
from control.progress import ProgressEvent
from control.spawner import Spawner
from control.web.answers import json_error
from control.web.context import hub_of

KEEPALIVE_SECONDS = 15.0
NOT_SEEN_GRACE_SECONDS = 2.0
PROGRESS_NEEDS_XSRF = True  # cookie callers must show the form token

log = logging.getLogger(__name__)


async def progress(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)
    caller = caller_of(request, hub, require_xsrf=PROGRESS_NEEDS_XSRF, event_stream=True)
    user = normalise_username(request.match_info["name"])
    require(caller, ("read:servers",), user)
    named = request.match_info.get("server")
    # From here on the owner is the server's key: the user, or "user/server" when named.
    owner = server_key(user, check_server_name(named)) if named is not None else user
    status = hub.spawner.status(owner)
    if status.state == "stopped" and owner not in hub.progress:
        # Another replica may have created the pod a moment ago, before this
        # replica's pod watch saw it: give the watch a moment before saying no.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hub.spawner.next_change(owner), NOT_SEEN_GRACE_SECONDS)
        status = hub.spawner.status(owner)
    followed = owner in hub.progress
    if status.state == "running" and not followed:
        events: AsyncIterator[dict[str, Any]] = _one(_ready(owner))
    elif followed:
        # Admins also get each Event's raw text ("detail"); users read plain words.
        events = _as_json(hub.progress.follow(owner), detail=caller.may("admin:servers"))
    elif status.state == "starting":
        # Started through another replica: this one knows it only from the pod watch.
        events = _started_elsewhere(hub.spawner, owner)
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
        # Closed in this order when the browser leaves: the keep-alive wrapper
        # first (it ends its wait for the next event), then the events themselves.
        async with (
            contextlib.aclosing(events),
            contextlib.aclosing(_with_keepalives(events)) as stream,
        ):
            async for event in stream:
                chunk = (
                    f"data: {json.dumps(event)}\n\n" if event is not None else ": keep-alive\n\n"
                )
                await response.write(chunk.encode())
        await response.write_eof()
    except ConnectionResetError:
        # The page went on (often right after "ready"): normal, not an error.
        log.debug("progress stream of %s closed by the browser", owner)
    return response


async def _with_keepalives(
    events: AsyncIterator[dict[str, Any]],
) -> AsyncIterator[dict[str, Any] | None]:
    """The events, with None after every KEEPALIVE_SECONDS of silence.

    The wait for the next event goes on across keep-alives (one task per
    event): cancelling it on a timeout would end the stream itself, so a
    start quiet for a while (a long image pull) would lose its stream.
    """
    iterator = aiter(events)
    waiting: asyncio.Future[dict[str, Any]] | None = None
    try:
        while True:
            if waiting is None:
                waiting = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({waiting}, timeout=KEEPALIVE_SECONDS)
            if not done:
                yield None
                continue
            try:
                event = waiting.result()
            except StopAsyncIteration:
                return
            waiting = None
            yield event
    finally:
        if waiting is not None and not waiting.done():
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await waiting
        elif waiting is not None and not waiting.cancelled():
            waiting.exception()  # seen: a stream that ended meanwhile is no error to log


async def _started_elsewhere(spawner: Spawner, owner: str) -> AsyncIterator[dict[str, Any]]:
    """Progress of a start this replica did not make: what its pod watch sees, to the end."""
    yield ProgressEvent(50, "Your server is starting").as_json()
    while True:
        status = spawner.status(owner)
        if status.state == "running":
            yield _ready(owner)
            return
        if status.state != "starting":
            why = status.failure.message if status.failure else "it stopped before it was ready"
            yield ProgressEvent(100, f"Spawn failed: {why}", failed=True).as_json()
            return
        await spawner.next_change(owner)


def _ready(user: str) -> dict[str, Any]:
    url = server_url(user)
    return ProgressEvent(100, f"Server ready at {url}", ready=True, url=url).as_json()


async def _one(event: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    yield event


async def _as_json(
    events: AsyncIterator[ProgressEvent], detail: bool
) -> AsyncIterator[dict[str, Any]]:
    async for event in events:
        yield event.as_json(detail)
