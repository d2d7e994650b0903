"""Talking to an OpenID Connect provider: discovery, the code exchange, the id_token, userinfo.

The protocol is authlib's (the authorization URL with PKCE, the token and
refresh requests, client authentication) over its httpx client, and the
id_token is verified by joserfc against the provider's JWKS (an unknown
`kid` fetches the JWKS again, once: key rotation) and by authlib's OpenID
claims rules (iss, aud, azp, nonce, at_hash, exp/iat with a small leeway).
`alg: none` and HMAC algorithms are never accepted.

Every call to the provider is bounded by `timeout` seconds; failures raise
SignInFailed (control.auth.sign_in_errors) saying whether the provider is
down, slow, or refused. Discovery is cached for an hour and fetched again
after a failure at the next sign-in. Nothing here logs a secret or a token.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
from authlib.common.urls import add_params_to_uri
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from control.auth.sign_in_errors import (
    SignInFailed,
    bad_token,
    provider_down,
    provider_refused,
    provider_slow,
)

DISCOVERY_PATH = "/.well-known/openid-configuration"
DISCOVERY_SECONDS = 3600.0
# Clock skew allowed on exp, iat and nbf, in seconds.
LEEWAY_SECONDS = 60
# Signature algorithms a provider may use for id_tokens (never none, never HMAC).
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_REQUIRED = ("authorization_endpoint", "token_endpoint", "jwks_uri")


@dataclass(frozen=True)
class Tokens:
    """What the token endpoint answered (the raw id_token kept for RP-initiated logout)."""

    access_token: str
    id_token: str | None
    refresh_token: str | None


class OidcClient:
    """One provider and one client registration; safe to share between requests."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        *,
        timeout: float = 10.0,
        leeway: int = LEEWAY_SECONDS,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.timeout = timeout
        self.leeway = leeway
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None

    def _client(self, **kwargs: Any) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self._secret,
            code_challenge_method="S256",
            timeout=httpx.Timeout(self.timeout),
            **kwargs,
        )

    async def _bounded(self, coroutine: Any) -> Any:
        """`coroutine` within the timeout, its transport failures as SignInFailed."""
        try:
            async with asyncio.timeout(self.timeout):
                return await coroutine
        except (TimeoutError, httpx.TimeoutException):
            raise provider_slow() from None
        except httpx.TransportError:
            raise provider_down() from None

    async def _get_json(self, url: str, **kwargs: Any) -> dict[str, Any]:
        async def fetch() -> httpx.Response:
            async with self._client() as client:
                return await client.request("GET", url, withhold_token=True, **kwargs)

        response = await self._bounded(fetch())
        if response.status_code >= 500:
            raise provider_down()
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200 or not isinstance(data, dict):
            raise provider_refused("bad_response", f"HTTP {response.status_code} from {url}")
        return data

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (cached), checked to be this issuer's."""
        if self._metadata is not None and time.monotonic() - self._metadata_at < DISCOVERY_SECONDS:
            return self._metadata
        data = await self._get_json(self.issuer + DISCOVERY_PATH)
        if str(data.get("issuer", "")).rstrip("/") != self.issuer:
            raise provider_refused("bad_discovery", "its discovery names another issuer")
        missing = [k for k in _REQUIRED if not isinstance(data.get(k), str)]
        if missing:
            raise provider_refused("bad_discovery", f"its discovery has no {missing[0]}")
        self._metadata, self._metadata_at = data, time.monotonic()
        return data

    async def authorization_url(
        self,
        *,
        redirect_uri: str,
        scopes: tuple[str, ...],
        state: str,
        nonce: str,
        code_verifier: str,
        extra: dict[str, str] | None = None,
    ) -> str:
        metadata = await self.metadata()
        async with self._client(redirect_uri=redirect_uri, scope=" ".join(scopes)) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=state,
                code_verifier=code_verifier,
                nonce=nonce,
                **(extra or {}),
            )
        return str(url)

    async def exchange(self, code: str, *, redirect_uri: str, code_verifier: str) -> Tokens:
        """The tokens for an authorization code (the provider refuses a code used twice)."""
        metadata = await self.metadata()

        async def fetch() -> dict[str, Any]:
            async with self._client(redirect_uri=redirect_uri) as client:
                return dict(
                    await client.fetch_token(
                        metadata["token_endpoint"],
                        grant_type="authorization_code",
                        code=code,
                        code_verifier=code_verifier,
                    )
                )

        return _tokens(await self._token_call(fetch()))

    async def refresh(self, refresh_token: str) -> Tokens:
        """New tokens for a refresh token; SignInFailed when the provider refuses it."""
        metadata = await self.metadata()

        async def fetch() -> dict[str, Any]:
            async with self._client() as client:
                return dict(
                    await client.refresh_token(
                        metadata["token_endpoint"], refresh_token=refresh_token
                    )
                )

        tokens = _tokens(await self._token_call(fetch()))
        if tokens.refresh_token is None:  # not rotated: the old one stays good
            return Tokens(tokens.access_token, tokens.id_token, refresh_token)
        return tokens

    async def _token_call(self, call: Any) -> dict[str, Any]:
        try:
            return dict(await self._bounded(call))
        except OAuthError as e:
            raise provider_refused(e.error or "error", e.description or "") from None
        except httpx.HTTPStatusError as e:
            if e.response.status_code >= 500:
                raise provider_down() from None
            raise provider_refused("bad_response", f"HTTP {e.response.status_code}") from None
        except ValueError as e:  # not a JSON object
            raise provider_refused("bad_response", str(e)) from None

    async def _key_set(self, *, again: bool = False) -> KeySet:
        if self._keys is None or again:
            metadata = await self.metadata()
            data = await self._get_json(metadata["jwks_uri"])
            try:
                self._keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as e:
                raise provider_refused("bad_jwks", f"its keys cannot be read: {e}") from None
        return self._keys

    async def verify_id_token(
        self, id_token: str, *, nonce: str | None, access_token: str | None = None
    ) -> dict[str, Any]:
        """The id_token's claims once signature, issuer, audience, nonce and times hold."""
        metadata = await self.metadata()
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in offered if a in ASYMMETRIC]
        if not algorithms:
            raise provider_refused("bad_discovery", "it signs id_tokens with no usable algorithm")
        registry = JWSRegistry(algorithms=algorithms)
        try:
            try:
                token = jwt.decode(id_token, await self._key_set(), registry=registry)
            except InvalidKeyIdError:  # a key the provider rotated in: look once more
                token = jwt.decode(id_token, await self._key_set(again=True), registry=registry)
            claims = CodeIDToken(
                token.claims,
                token.header,
                {
                    "iss": {"essential": True, "value": metadata["issuer"]},
                    "aud": {"essential": True, "value": self.client_id},
                },
                {"nonce": nonce, "client_id": self.client_id, "access_token": access_token},
            )
            claims.validate(leeway=self.leeway)
        except SignInFailed:
            raise
        except (JoseError, ValueError, TypeError, KeyError) as e:
            raise bad_token(_jose_detail(e)) from None
        return dict(claims)

    async def userinfo(self, access_token: str) -> dict[str, Any] | None:
        """The userinfo endpoint's claims, or None when the provider has none."""
        metadata = await self.metadata()
        url = metadata.get("userinfo_endpoint")
        if not isinstance(url, str):
            return None
        return await self._get_json(url, headers={"Authorization": f"Bearer {access_token}"})

    async def end_session_url(
        self, *, id_token_hint: str | None, post_logout_redirect_uri: str | None
    ) -> str | None:
        """Where RP-initiated logout sends the browser; None without an end_session_endpoint."""
        metadata = await self.metadata()
        endpoint = metadata.get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return None
        params = {"client_id": self.client_id}
        if id_token_hint:
            params["id_token_hint"] = id_token_hint
        if post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = post_logout_redirect_uri
        return str(add_params_to_uri(endpoint, params))


def _tokens(answer: dict[str, Any]) -> Tokens:
    access = answer.get("access_token")
    if not isinstance(access, str) or not access:
        raise provider_refused("bad_response", "no access_token in its answer")
    id_token = answer.get("id_token")
    refresh = answer.get("refresh_token")
    return Tokens(
        access,
        id_token if isinstance(id_token, str) else None,
        refresh if isinstance(refresh, str) and refresh else None,
    )


def _jose_detail(error: Exception) -> str:
    """A short description of a verification failure for the log (never the token)."""
    name = type(error).__name__
    text = str(error)
    return f"{name}: {text[:200]}" if text else name
