"""/hub/api/users/<name>/tokens: list, make, read and revoke personal API tokens.

JupyterHub's shapes: GET lists {"api_tokens": [model...]}, POST takes
{note, expires_in (seconds or null), scopes (names, or null for all the
user's own)} and answers 201 with the model plus "token" (shown this once),
GET/DELETE .../tokens/<id> read one or revoke it (204). Callers need the
`tokens` scope over the user (`read:tokens` to read): a signed-in user has
it for themselves, admins for everyone. A token never holds a scope its
user does not: asking for one is a 403 naming it. Storing is
control.user_tokens' job; nothing here keeps a secret.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control.api.bodies import empty_answer, json_answer, json_body
from control.api.callers import ApiError, caller_of, own_scopes, require
from control.api.models import isoformat
from control.api.scopes import expand, unknown_scopes
from control.errors import BadUserName
from control.names import normalise_username
from control.user_tokens import MAX_NOTE_LENGTH, MAX_TOKENS_PER_USER, UserToken, UserTokens
from control.web.context import Hub, hub_of

MAX_EXPIRES_IN = 10 * 365 * 24 * 3600  # seconds: ten years is "never" enough


def token_model(token: UserToken) -> dict[str, Any]:
    """A personal token as JupyterHub's APIToken model (never the secret)."""
    return {
        "user": token.user,
        "id": token.id,
        "kind": "api_token",
        "roles": [],
        "scopes": list(token.scopes),
        "created": isoformat(token.created),
        "last_activity": None,
        "expires_at": isoformat(token.expires_at),
        "note": token.note,
        "session_id": None,
        "oauth_client": "JupyterHub",
    }


def _store(hub: Hub) -> UserTokens:
    if hub.user_tokens is None:
        raise ApiError(404, "Personal API tokens are not available here")
    return hub.user_tokens


def _owner(request: web.Request, hub: Hub, scopes: tuple[str, ...]) -> str:
    caller = caller_of(request, hub)
    try:
        user = normalise_username(request.match_info["name"])
    except BadUserName:
        raise ApiError(404, "No such user") from None
    require(caller, scopes, user)
    if user not in hub.users:
        raise ApiError(404, f"No such user: {user}")
    return user


def check_request(hub: Hub, user: str, data: object) -> tuple[str, tuple[str, ...], float | None]:
    """(note, scope names, expires_in) of a request for a new token; ApiError 400/403 if bad.

    The token page uses the same rules as the API.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ApiError(400, "Body must be a JSON dict or empty")
    unknown = sorted(set(data) - {"note", "expires_in", "scopes", "roles"})
    if unknown:
        raise ApiError(400, f"Unexpected field {unknown[0]!r}: use note, expires_in, scopes")
    if data.get("roles"):
        raise ApiError(400, "roles are not supported: ask for scopes")
    note = data.get("note") or "Requested via api"
    if not isinstance(note, str) or len(note) > MAX_NOTE_LENGTH:
        raise ApiError(400, f"note must be a string of at most {MAX_NOTE_LENGTH} characters")
    expires_in = data.get("expires_in")
    if expires_in is not None and (
        isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0
    ):
        raise ApiError(
            400, f"token expires_in must be null or a positive integer, not {expires_in!r}"
        )
    if expires_in is not None and expires_in > MAX_EXPIRES_IN:
        raise ApiError(400, f"token expires_in: {expires_in} must not exceed {MAX_EXPIRES_IN}")
    names, held, _ = own_scopes(hub, user)
    scopes = data.get("scopes")
    if scopes is None:
        scopes = list(names)  # JupyterHub's default: everything the user may do
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes) or not scopes:
        raise ApiError(400, f"token scopes must be null or a list of scope names, not {scopes!r}")
    unknown = unknown_scopes(scopes)
    if unknown:
        raise ApiError(400, f"Unknown scope: {unknown[0]!r}")
    beyond = sorted(expand(scopes) - held)
    if beyond:
        raise ApiError(403, f"Not assigning requested scopes {beyond} not held by User {user}")
    return note, tuple(dict.fromkeys(scopes)), float(expires_in) if expires_in else None


async def list_tokens(request: web.Request) -> web.Response:
    hub = hub_of(request)
    user = _owner(request, hub, ("read:tokens",))
    models = [token_model(t) for t in _store(hub).of_user(user)]
    return json_answer({"api_tokens": models})


async def create_token(request: web.Request) -> web.Response:
    hub = hub_of(request)
    user = _owner(request, hub, ("tokens",))
    store = _store(hub)
    note, scopes, expires_in = check_request(hub, user, await json_body(request))
    if len(store.of_user(user)) >= MAX_TOKENS_PER_USER:
        raise ApiError(400, f"{user} has {MAX_TOKENS_PER_USER} tokens: revoke some first")
    secret, made = await store.create(
        user, note=note, scopes=scopes, expires_in=expires_in, now=hub.clock()
    )
    return json_answer({**token_model(made), "token": secret}, 201)


def _token(request: web.Request, hub: Hub, user: str) -> UserToken:
    found = _store(hub).get(user, request.match_info["token_id"])
    if found is None:
        raise ApiError(404, f"No such token: {request.match_info['token_id']}")
    return found


async def get_token(request: web.Request) -> web.Response:
    hub = hub_of(request)
    user = _owner(request, hub, ("read:tokens",))
    return json_answer(token_model(_token(request, hub, user)))


async def revoke_token(request: web.Request) -> web.Response:
    hub = hub_of(request)
    user = _owner(request, hub, ("tokens",))
    found = _token(request, hub, user)
    await _store(hub).revoke(user, found.id, hub.clock())
    return empty_answer(204)
