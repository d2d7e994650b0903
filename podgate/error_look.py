"""The edge's own error pages in the hub's look: the hub's layout and security headers.

Wiring only: edge/ and control/ never import each other, so the edge takes
an ErrorPageLook and this module makes one from control.pages. The pages
keep the hub's Content-Security-Policy (no inline script or style); the
stylesheet comes from the hub's /hub/static/, which the edge serves through
the hub whenever the control plane runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from control.pages import error_page
from control.pages.security import PAGE_HEADERS
from edge.errors import ErrorPageLook, PageLink


def _hub_document(
    status: int, title: str, message: str, links: Sequence[PageLink], refresh: int | None
) -> str:
    ways = [(link.label, link.href) for link in links]
    return error_page(status, message, title=title, retry_after=refresh, links=ways)


HUB_LOOK = ErrorPageLook(render=_hub_document, headers=PAGE_HEADERS)
