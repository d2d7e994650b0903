"""The GitHub preset: OAuth2 without OpenID (no id_token), the user and groups from the API.

GitHub (and GitHub Enterprise Server) has no issuer, discovery or
id_token: the browser goes to <web>/login/oauth/authorize, the code is
exchanged at <web>/login/oauth/access_token (authlib, with PKCE), and the
access token reads GET <api>/user (the login is the user name) and, when
groups matter, GET <api>/user/orgs and /user/teams: a user's groups are
their organisations ("lab") and teams ("lab:admins", org:team-slug), so
allowed_organizations / allowed_groups / admin_groups take either form.
Only the first 100 organisations and teams are read. Every call is bounded
by `timeout`; failures are SignInFailed, as for OpenID providers. (authlib's
token requests ask for JSON, which GitHub then answers with.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2 as httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from control.auth.oidc import Identity
from control.auth.oidc_client import Tokens
from control.auth.oidc_state import Attempt
from control.auth.presets import ProviderProfile
from control.auth.sign_in_errors import provider_down, provider_refused, provider_slow

_API = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


class GitHubSource:
    """Sign-in with a GitHub OAuth app (or a GitHub App's user tokens)."""

    def __init__(
        self, profile: ProviderProfile, client_id: str, client_secret: str, *, timeout: float = 10.0
    ) -> None:
        self.profile = profile
        self.client_id = client_id
        self._secret = client_secret
        self.timeout = timeout
        self.web = profile.web_url or "https://github.com"
        self.api = profile.api_url or "https://api.github.com"

    def _client(self, **kwargs: Any) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self._secret,
            # GitHub reads the client's credentials from the form body.
            token_endpoint_auth_method="client_secret_post",
            code_challenge_method="S256",
            timeout=httpx.Timeout(self.timeout),
            **kwargs,
        )

    async def _bounded(self, call: Any) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except (TimeoutError, httpx.TimeoutException):
            raise provider_slow() from None
        except httpx.TransportError:
            raise provider_down() from None
        except OAuthError as e:
            raise provider_refused(e.error or "error", e.description or "") from None
        except httpx.HTTPStatusError as e:
            if e.response.status_code >= 500:
                raise provider_down() from None
            raise provider_refused("bad_response", f"HTTP {e.response.status_code}") from None
        except ValueError as e:
            raise provider_refused("bad_response", str(e)) from None

    async def authorization_url(self, redirect_uri: str, attempt: Attempt) -> str:
        scope = " ".join(self.profile.scopes)
        async with self._client(redirect_uri=redirect_uri, scope=scope) as client:
            url, _ = client.create_authorization_url(
                f"{self.web}/login/oauth/authorize",
                state=attempt.state,
                code_verifier=attempt.code_verifier,
            )
        return str(url)

    async def identify(self, code: str, redirect_uri: str, attempt: Attempt) -> Identity:
        async def fetch() -> dict[str, Any]:
            async with self._client(redirect_uri=redirect_uri) as client:
                return dict(
                    await client.fetch_token(
                        f"{self.web}/login/oauth/access_token",
                        grant_type="authorization_code",
                        code=code,
                        code_verifier=attempt.code_verifier,
                    )
                )

        answer = await self._bounded(fetch())
        if "error" in answer:  # GitHub answers 200 with an error for a bad or spent code
            raise provider_refused(str(answer["error"]), str(answer.get("error_description", "")))
        access = answer.get("access_token")
        if not isinstance(access, str) or not access:
            raise provider_refused("bad_response", "no access_token in GitHub's answer")
        refresh = answer.get("refresh_token")
        tokens = Tokens(access, None, refresh if isinstance(refresh, str) and refresh else None)
        return await self._identity(tokens)

    async def _identity(self, tokens: Tokens) -> Identity:
        user = await self._get("/user", tokens.access_token)
        login = user.get(self.profile.username_claim)
        email = user.get("email")
        groups = await self._groups(tokens.access_token)
        return Identity(
            name=login if isinstance(login, str) else "",
            groups=groups,
            email=email if isinstance(email, str) else None,
            tokens=tokens,
        )

    async def _groups(self, access_token: str) -> frozenset[str]:
        """Organisations and org:team names, when any rule asks about groups."""
        if not (self.profile.allowed_groups or self.profile.admin_groups):
            return frozenset()
        groups: set[str] = set()
        for org in await self._get_list("/user/orgs?per_page=100", access_token):
            if isinstance(org.get("login"), str):
                groups.add(org["login"])
        for team in await self._get_list("/user/teams?per_page=100", access_token):
            org = (team.get("organization") or {}).get("login")
            if isinstance(org, str) and isinstance(team.get("slug"), str):
                groups.add(f"{org}:{team['slug']}")
        return frozenset(groups)

    async def _get(self, path: str, access_token: str) -> dict[str, Any]:
        data = await self._fetch(path, access_token)
        if not isinstance(data, dict):
            raise provider_refused("bad_response", f"GitHub's {path} is not an object")
        return data

    async def _get_list(self, path: str, access_token: str) -> list[dict[str, Any]]:
        data = await self._fetch(path, access_token)
        if not isinstance(data, list):
            raise provider_refused("bad_response", f"GitHub's {path} is not a list")
        return [item for item in data if isinstance(item, dict)]

    async def _fetch(self, path: str, access_token: str) -> Any:
        async def get() -> Any:
            headers = {**_API, "Authorization": f"Bearer {access_token}"}
            async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout)) as client:
                response = await client.get(self.api + path, headers=headers)
            response.raise_for_status()
            return response.json()

        return await self._bounded(get())

    async def refreshed(self, refresh_token: str) -> tuple[frozenset[str], str]:
        """GitHub Apps' expiring user tokens come with a refresh token; OAuth apps' never do."""

        async def fetch() -> dict[str, Any]:
            async with self._client() as client:
                return dict(
                    await client.refresh_token(
                        f"{self.web}/login/oauth/access_token",
                        refresh_token=refresh_token,
                    )
                )

        answer = await self._bounded(fetch())
        if "error" in answer:
            raise provider_refused(str(answer["error"]), str(answer.get("error_description", "")))
        access = answer.get("access_token")
        if not isinstance(access, str) or not access:
            raise provider_refused("bad_response", "no access_token in GitHub's answer")
        new = answer.get("refresh_token")
        return await self._groups(access), new if isinstance(new, str) and new else refresh_token

    async def end_session_url(self, id_token: str | None, after: str | None) -> str | None:
        return None  # GitHub has no RP-initiated logout
