"""The OAuth2 authorization-code flow a jupyterhub-singleuser server runs with its hub.

A browser that reaches a hub-API server without a token of its own is sent
to GET /hub/api/oauth2/authorize (client_id, redirect_uri, state, PKCE
challenge). A signed-in visitor who may use that server comes straight back
to the server's oauth_callback with a code: no consent page, since the
server is their own (or, with edge.admin_access, they are an admin). The
server then POSTs the code, its client id and its own token as the client
secret to /hub/api/oauth2/token and gets an access token for that visitor
(control.api.singleuser answers who it is).

Each server is its own client ("jupyterhub-user-<name>", plus "-<server>"
for a named server), known while that server has a hub-API pod; its one
redirect URI is compared exactly; codes are signed, expire after two
minutes and are spent once at every replica (control.oauth_codes); a PKCE
challenge, when sent, must be met. Anything else is refused: the authorize
step with an error page (it never redirects to a URI it did not check), the
token step with RFC 6749's JSON error. Refusals are expected traffic, so
they log at most at INFO.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, urlencode

from aiohttp import web

from control.api.singleuser import oauth_scopes
from control.errors import KubeError
from control.manifests import server_url
from control.names import split_key
from control.oauth_grants import GrantError, pkce_challenge
from control.pages import error_page
from control.singleuser_env import callback_url
from control.singleuser_hub import SingleuserHub
from control.web.answers import html, redirect
from control.web.context import Hub, hub_of
from control.web.forms import too_large

log = logging.getLogger(__name__)

AUTHORIZE = "/hub/api/oauth2/authorize"
TOKEN = "/hub/api/oauth2/token"
# RFC 7636: S256 challenges are 43 base64url characters; verifiers 43 to 128 unreserved.
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
MAX_TOKEN_FORM = 16 * 1024


def _page(status: int, message: str) -> web.Response:
    return html(error_page(status, message), status, {"Cache-Control": "no-store"})


def _client_of(hub: Hub, singleuser: SingleuserHub, client_id: str) -> str | None:
    """The server (key) of a known client: a hub-API server running or starting."""
    return singleuser.tokens.client_server(client_id)


async def authorize(request: web.Request) -> web.Response:
    hub = hub_of(request)
    singleuser = hub.singleuser
    if singleuser is None:
        return _page(404, "This hub runs no jupyterhub-singleuser servers (spawner.hub_api).")
    query = request.query
    client_id = query.get("client_id", "")
    server = _client_of(hub, singleuser, client_id)
    if server is None:
        log.info("oauth authorize: unknown client %r", client_id[:80])
        return _page(400, "Unknown OAuth client: no such server is running. Start it again.")
    redirect_uri = query.get("redirect_uri", "")
    owner = split_key(server)[0]
    if redirect_uri != callback_url(server_url(server)):
        log.info("oauth authorize: %s asked for redirect_uri %r", client_id, redirect_uri[:200])
        return _page(400, "The redirect_uri is not the one registered for this server.")
    if query.get("response_type") != "code":
        return _page(400, "Only response_type=code is supported.")
    challenge = query.get("code_challenge")
    if challenge is not None:
        if query.get("code_challenge_method") != "S256":
            return _page(400, "Only the S256 PKCE code_challenge_method is supported.")
        if not _CHALLENGE.match(challenge):
            return _page(400, "The PKCE code_challenge is malformed.")
    visitor = hub.user(request)
    if visitor is None:
        return redirect(f"/hub/login?next={quote(request.path_qs, safe='')}")
    if visitor != owner and not (hub.admin_access and hub.access.is_admin(visitor)):
        log.info("oauth authorize: %s may not use the server of %s", visitor, owner)
        return _page(403, f"You ({visitor}) may not use the server of {owner}.")
    code = singleuser.grants.issue_code(
        visitor, client_id, redirect_uri, challenge, singleuser.clock()
    )
    params = {"code": code}
    if "state" in query:
        params["state"] = query["state"]
    return redirect(f"{redirect_uri}?{urlencode(params)}")


def _refuse(status: int, error: str, description: str) -> web.Response:
    """RFC 6749 section 5.2's error, with JupyterHub's status/message beside it."""
    log.info("oauth token: %s (%s)", error, description)
    return web.json_response(
        {
            "error": error,
            "error_description": description,
            "status": status,
            "message": description,
        },
        status=status,
        headers={"Cache-Control": "no-store"},
    )


async def token(request: web.Request) -> web.Response:
    hub = hub_of(request)
    singleuser = hub.singleuser
    if singleuser is None:
        return _refuse(404, "invalid_client", "this hub runs no jupyterhub-singleuser servers")
    declared = request.content_length
    if declared is not None and declared > MAX_TOKEN_FORM:
        raise too_large(MAX_TOKEN_FORM, declared)
    form = await request.post()

    def field(name: str) -> str:
        value = form.get(name)
        return value if isinstance(value, str) else ""

    if field("grant_type") != "authorization_code":
        return _refuse(400, "unsupported_grant_type", "only authorization_code is supported")
    client_id = field("client_id")
    server = _client_of(hub, singleuser, client_id)
    if server is None or singleuser.tokens.server_of(field("client_secret")) != server:
        return _refuse(401, "invalid_client", "unknown client, or wrong client_secret")
    now = singleuser.clock()
    try:
        code = singleuser.grants.read_code(field("code"), now)
    except GrantError as e:
        return _refuse(400, "invalid_grant", f"the code is {e}: start again")
    if code.client_id != client_id:
        return _refuse(400, "invalid_grant", "the code was issued to another client")
    if field("redirect_uri") != code.redirect_uri:
        return _refuse(400, "invalid_grant", "redirect_uri differs from the authorize step's")
    if code.challenge is not None:
        verifier = field("code_verifier")
        if not verifier:
            return _refuse(400, "invalid_grant", "code_verifier is required (PKCE was used)")
        if not _VERIFIER.match(verifier) or pkce_challenge(verifier) != code.challenge:
            return _refuse(400, "invalid_grant", "code_verifier does not match the challenge")
    if not hub.access.is_allowed(code.user):
        return _refuse(400, "invalid_grant", "the user may no longer sign in")
    try:
        fresh = await singleuser.codes.spend(code.user, code.nonce, code.expires, now)
    except KubeError as e:
        log.warning("oauth token: cannot record a spent code: %s", e)
        return _refuse(503, "temporarily_unavailable", "the cluster is not answering; retry")
    if not fresh:
        return _refuse(400, "invalid_grant", "the code was already used")
    access = singleuser.grants.issue_token(code.user, client_id, now)
    return web.json_response(
        {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(singleuser.grants.token_seconds),
            "scope": " ".join(oauth_scopes(code.user, server)),
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def add_oauth_routes(app: web.Application) -> None:
    """The two OAuth endpoints: on the public port only (browsers and pods reach it)."""
    app.router.add_get(AUTHORIZE, authorize)
    app.router.add_post(TOKEN, token)
