"""Security headers for the hub's HTML pages, as one aiohttp middleware.

Applied to the hub application only. It hardens HTML answers (text/html)
and leaves every other answer as the handler made it: JSON, event streams
and static files keep their own headers, and a response already sent
(a stream that was prepared) is never touched.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)

PAGE_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    # A window a pod's page opens onto /hub/ is severed from its opener: the pod's
    # script cannot read the page (and its XSRF token) through the window handle.
    "Cross-Origin-Opener-Policy": "same-origin",
}


def harden(response: web.StreamResponse) -> None:
    """Add the page headers to an unsent HTML response; a handler's own values win."""
    if response.prepared or response.content_type != "text/html":
        return
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        # Raised answers (an error page raised as HTTPForbidden...) are pages too.
        harden(exc)
        raise
    harden(response)
    return response
