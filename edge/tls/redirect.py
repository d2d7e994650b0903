"""The plain-HTTP listener beside HTTPS (tls.redirect_http): redirects, and ACME's HTTP-01.

Every request is sent to the same host and path on https: 301 for GET and
HEAD, 308 for the rest (a browser keeps a POST a POST). The one exception is
`/.well-known/acme-challenge/<token>`, which an ACME server fetches over plain
HTTP to validate a certificate order (RFC 8555 8.3): answered from
`HttpChallenges`, which the control plane's ACME client fills while an order
is under way. A Host that is not a host name or address gets a 400: it would
go into the Location header.

Nothing else is served here: no cookie is read, no route looked up.
"""

from __future__ import annotations

import re

from aiohttp import web

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
# A host name, an IPv4 address, or a bracketed IPv6 address; then an optional port.
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$"
)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # base64url, as RFC 8555 8.3 says


class HttpChallenges:
    """HTTP-01 answers under way: token -> key authorization (control.acme fills it)."""

    def __init__(self) -> None:
        self._answers: dict[str, str] = {}

    def publish(self, token: str, key_authorization: str) -> None:
        self._answers[token] = key_authorization

    def withdraw(self, token: str) -> None:
        self._answers.pop(token, None)

    def answer(self, token: str) -> str | None:
        return self._answers.get(token)


def build_redirect_app(https_port: int, challenges: HttpChallenges | None) -> web.Application:
    """The app for the plain listener; `https_port`: the port the https URLs name."""
    suffix = "" if https_port == 443 else f":{https_port}"

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.raw_path
        if path.startswith(CHALLENGE_PREFIX) and request.method in ("GET", "HEAD"):
            token = path[len(CHALLENGE_PREFIX) :]
            found = challenges.answer(token) if challenges and _TOKEN.match(token) else None
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
