"""Hub pages are for the browser's own navigation only: no page to a script or a frame.

A page served by a user's pod shares the hub's origin. Its scripts must not
read a hub page, because hub pages carry the XSRF token that makes cookie
calls to /hub/api work (see control.api.callers). Browsers say what a
request is for in `Sec-Fetch-Dest`, which a script cannot set: a hub page
requested with it present and not `document` (fetch/XHR: `empty`; iframe,
script, ...) is refused with a 403 before any handler runs, so such a GET
also starts nothing (GET /hub/spawn/<name> starts a server).

A script that already holds the token (a hub page's own script, e.g. the
admin panel's live updates) passes by sending it in `X-XSRFToken`: it
learns nothing it did not have. /hub/api/ (JSON, guarded by tokens and
XSRF) and /hub/static/ (CSS, JS, images, fetched with their own
destinations) are left alone. Thin: reads headers only, never a body.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from control.api.callers import xsrf_ok
from control.web.answers import json_error
from control.web.context import hub_of

EXEMPT_PREFIXES = ("/hub/api/", "/hub/static/")
NAVIGATION = "document"


@web.middleware
async def page_fetch_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    destination = request.headers.get("Sec-Fetch-Dest")
    if (
        destination is not None
        and destination.lower() != NAVIGATION
        and not request.path.startswith(EXEMPT_PREFIXES)
        and not _holds_token(request)
    ):
        return json_error(403, "hub pages are only served to the browser's own navigation")
    return await handler(request)


def _holds_token(request: web.Request) -> bool:
    hub = hub_of(request)
    user = hub.user(request)
    return user is not None and xsrf_ok(request, hub, user)
