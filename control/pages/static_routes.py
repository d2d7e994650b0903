"""Serves the pages' CSS, JS and images from control/pages/static/ under /hub/static/.

Only the files that exist at registration are served (a fixed table: no
path from the request ever reaches the filesystem), with their content
type set here rather than guessed and a cache lifetime that the versioned
URLs of markup.static_url make safe.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from control.pages.markup import STATIC_DIR, STATIC_PREFIX

CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# Page URLs carry a content hash (?v=...), so a day is safe and saves requests.
CACHE_CONTROL = "public, max-age=86400"


def _static_files(directory: Path) -> dict[str, Path]:
    return {
        path.name: path
        for path in sorted(directory.iterdir())
        if path.is_file() and path.suffix in CONTENT_TYPES
    }


def add_static_routes(app: web.Application, prefix: str = STATIC_PREFIX) -> None:
    """Register GET (and HEAD) {prefix}/{name} for each file of static/."""
    files = _static_files(STATIC_DIR)

    async def serve(request: web.Request) -> web.StreamResponse:
        path = files.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound(text="no such static file")
        return web.FileResponse(
            path,
            headers={
                "Content-Type": CONTENT_TYPES[path.suffix],
                "Cache-Control": CACHE_CONTROL,
                "X-Content-Type-Options": "nosniff",
            },
        )

    app.router.add_get(prefix.rstrip("/") + "/{name}", serve, name="podgate-static")
