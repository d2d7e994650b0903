"""A small JSON client of the Kubernetes REST API over one aiohttp session.

Requests and watch streams as plain dicts; every failure becomes ApiError
(status 0 when no answer came). It never retries or logs: the informer and
the writers decide what a failure means.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from kubesim.nodeagent.kubeconfig import ClusterAccess

Obj = dict[str, Any]
Query = dict[str, str]

MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = "kubesim-node-agent"
WATCH_SECONDS = 240  # the server ends a watch after this; the informer resumes it


class ApiError(Exception):
    """The API refused a call (status, Status reason) or could not be reached (status 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else f"{reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class ApiClient:
    """One connection pool to one API server, authenticated as one user."""

    def __init__(self, access: ClusterAccess, *, timeout: float = 15.0) -> None:
        self.access = access
        self._timeout = timeout
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **access.headers}
        self._session = aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(limit=64, ssl=access.ssl),
            trust_env=False,  # the API server is reached directly, never through a proxy
        )

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Obj | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        try:
            async with self._session.request(
                method,
                self.access.server + path,
                params=query,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                raw = await response.read()
                if not 200 <= response.status < 300:
                    raise _refusal(response.status, raw)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise _unreachable(self.access.server, e) from e
        answer = json.loads(raw) if raw else {}
        return answer if isinstance(answer, dict) else {}

    async def watch(self, path: str, query: Query) -> AsyncIterator[Obj]:
        """The watch events ({type, object}) until the server ends the stream.

        An ERROR event is raised as ApiError with its Status code (410: list again).
        """
        params = {
            **query,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._timeout, sock_read=WATCH_SECONDS + 30
        )
        try:
            async with self._session.get(
                self.access.server + path, params=params, timeout=timeout
            ) as response:
                if response.status != 200:
                    raise _refusal(response.status, await response.read())
                async for line in response.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise ApiError(
                            int(status.get("code") or 500),
                            str(status.get("reason") or "Error"),
                            str(status.get("message") or "watch failed"),
                        )
                    yield event
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise _unreachable(self.access.server, e) from e


def _refusal(status: int, raw: bytes) -> ApiError:
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and answer.get("kind") == "Status":
        return ApiError(status, str(answer.get("reason") or ""), str(answer.get("message") or ""))
    return ApiError(status, "", raw[:500].decode("utf-8", "replace").strip())


def _unreachable(server: str, error: BaseException) -> ApiError:
    detail = str(error) or type(error).__name__
    return ApiError(0, "Unreachable", f"cannot reach the API server at {server}: {detail}")
