"""CSRF for the hub's forms: the binding cookie on every page, the token check on every POST.

The binding cookie is made on the first page a browser sees (the
`xsrf_binding` middleware); pages put `xsrf_token(request)` in their forms;
`checked_form` reads a bounded form body and refuses it (403) unless the
token matches this browser's binding. A body over the app's
client_max_size is refused (413 page) before reading when its length is
declared, and as soon as the cap is passed when it is chunked: never
buffered whole.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiDictProxy

from control.pages import XSRF_FIELD, error_page
from control.web.context import hub_of
from control.web.identity import request_cookies, set_xsrf_binding

_BINDING = web.RequestKey("podgate_xsrf_binding", str)
_NEW_BINDING = web.RequestKey("podgate_xsrf_new", bool)

TOO_LARGE = "This form is far larger than any form of this site. Nothing was saved."

STALE_FORM = (
    "This form has expired or was not sent from this site. Go back, reload the page and try again."
)


def _binding(request: web.Request) -> str:
    if _BINDING not in request:
        hub = hub_of(request)
        found = next(
            (
                v
                for v in request_cookies(request, hub.cookies.xsrf_name)
                if hub.csrf.valid_binding(v)
            ),
            None,
        )
        if found is None:
            found = hub.csrf.new_binding()
            request[_NEW_BINDING] = True
        request[_BINDING] = found
    return request[_BINDING]


def _context(request: web.Request) -> str:
    # After login a token is tied to the session's user too: one planted with a
    # cookie from a sibling site (made for nobody) does not act for anyone.
    return hub_of(request).user(request) or ""


def xsrf_token(request: web.Request) -> str:
    """The token this browser's forms carry (making its binding cookie if it has none)."""
    return hub_of(request).csrf.token_for(_binding(request), _context(request))


@web.middleware
async def xsrf_binding(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sets the binding cookie on the answer when a handler had to make a new one."""
    try:
        response = await handler(request)
    except web.HTTPException as answer:
        _remember_binding(request, answer)
        raise
    _remember_binding(request, response)
    return response


def _remember_binding(request: web.Request, response: web.StreamResponse) -> None:
    if request.get(_NEW_BINDING) and not response.prepared:
        set_xsrf_binding(response, request, hub_of(request).cookies, request[_BINDING])


async def checked_form(request: web.Request) -> MultiDictProxy[str | bytes | web.FileField]:
    """The POSTed form when its CSRF token is good; otherwise a 403 page is raised."""
    form = await _bounded_form(request)
    token = form.get(XSRF_FIELD)
    hub = hub_of(request)
    bindings = request_cookies(request, hub.cookies.xsrf_name)
    context = _context(request)
    if not any(hub.csrf.check(binding, token, context) for binding in bindings):
        raise web.HTTPForbidden(
            text=error_page(403, STALE_FORM, title="Form not accepted"),
            content_type="text/html",
        )
    return form


async def _bounded_form(request: web.Request) -> MultiDictProxy[str | bytes | web.FileField]:
    limit = request.client_max_size
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(limit, declared)  # refused before a byte of it is read
    try:
        return await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(limit, 0) from None  # chunked: aiohttp stopped at the cap


def too_large(limit: int, size: int) -> web.HTTPRequestEntityTooLarge:
    # Connection: close, so the client is not expected to send the rest of it.
    return web.HTTPRequestEntityTooLarge(
        limit,
        size,
        text=error_page(413, TOO_LARGE, title="Form too large"),
        content_type="text/html",
        headers={"Connection": "close"},
    )


def field(form: MultiDictProxy[str | bytes | web.FileField], name: str) -> str:
    """A text field of the form ("" when absent or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""
