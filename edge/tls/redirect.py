"""The plain-HTTP listener beside HTTPS (tls.redirect_http): redirects, and ACME's HTTP-01.

Every request is sent to the same host and path on https: 301 for GET and
HEAD, 308 for the rest (a browser keeps a POST a POST). The one exception is
`/.well-known/acme-challenge/<token>`, which an ACME server fetches over plain
HTTP to validate a certificate order (RFC 8555 8.3), answered by `HttpChallenges`.
The answer is the token and the ACME account key's thumbprint ("stateless"
HTTP-01): it depends on nothing else, so every replica answers for an order
any replica placed, as long as it knows the account's thumbprint (from the
shared Secret, control.acme). Only the account key's holder can place orders,
so answering any token this way proves nothing to anyone else. A Host that
is not a host name or address gets a 400: it would go into the Location header.

Nothing else is served here: no cookie is read, no route looked up.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
# A host name, an IPv4 address, or a bracketed IPv6 address; then an optional port.
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$"
)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # base64url, as RFC 8555 8.3 says


class HttpChallenges:
    """Answers HTTP-01 challenges for the ACME account whose key thumbprint is known.

    `lookup` (the control plane's: read the shared Secret) is asked when no
    thumbprint is known yet, at most once per LOOKUP_EVERY seconds, so a
    replica answers for an account another replica just made.
    """

    LOOKUP_EVERY = 1.0

    def __init__(self, lookup: Callable[[], Awaitable[str | None]] | None = None) -> None:
        self.thumbprint: str | None = None
        self.lookup = lookup
        self._looked = -self.LOOKUP_EVERY

    async def answer(self, token: str) -> str | None:
        if not _TOKEN.match(token):
            return None
        if self.thumbprint is None and self.lookup is not None:
            now = time.monotonic()
            if now - self._looked >= self.LOOKUP_EVERY:
                self._looked = now
                try:
                    self.thumbprint = await self.lookup()
                except Exception as e:  # the API is down: this try answers 404
                    log.warning("reading the ACME account for a challenge failed: %s", e)
        if self.thumbprint is None:
            return None
        return f"{token}.{self.thumbprint}"


def build_redirect_app(https_port: int, challenges: HttpChallenges | None) -> web.Application:
    """The app for the plain listener; `https_port`: the port the https URLs name."""
    suffix = "" if https_port == 443 else f":{https_port}"

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.raw_path
        if path.startswith(CHALLENGE_PREFIX) and request.method in ("GET", "HEAD"):
            token = path[len(CHALLENGE_PREFIX) :]
            found = await challenges.answer(token) if challenges is not None else None
            if found is None:
                return web.Response(status=404, text="No such ACME challenge.\n")
            return web.Response(text=found, content_type="application/octet-stream")
        host = request.headers.get("Host", "")
        if not _HOST.match(host) or not path.startswith("/"):
            return web.Response(status=400, text="A Host header naming this server is needed.\n")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        status = 301 if request.method in ("GET", "HEAD") else 308
        return web.Response(
            status=status,
            headers={"Location": f"https://{name}{suffix}{path}", "Cache-Control": "no-store"},
        )

    app = web.Application()
    app.router.add_route("*", "/{anything:.*}", handle)
    return app
