"""A raw HTTP client for the conformance script: every answer kept as it came.

Not kubernetes_asyncio: the script must see status codes, Status bodies and
watch lines exactly as each server sends them, including the failures a
typed client would turn into exceptions. Loopback only; no proxy.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

Obj = dict[str, Any]

REQUEST_SECONDS = 20.0
# A watch that neither ends nor sends its next line within this is cut off.
WATCH_IDLE_SECONDS = 10.0


@dataclass
class Answer:
    """One step's answer: the step name, HTTP status and decoded body."""

    step: str
    code: int
    body: Any


class RawApi:
    """Requests as the admin of one server (kubesim or the real kube-apiserver)."""

    def __init__(self, url: str, token: str, ca_file: Path | None) -> None:
        self.url = url
        ssl_context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            connector=aiohttp.TCPConnector(ssl=ssl_context) if ssl_context else None,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS),
        )

    async def close(self) -> None:
        await self._session.close()

    async def call(
        self,
        step: str,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Answer:
        data = None
        headers = {}
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        async with self._session.request(
            method, self.url + path, params=query, data=data, headers=headers
        ) as response:
            text = await response.text()
        try:
            decoded: Any = json.loads(text)
        except json.JSONDecodeError:
            decoded = text
        return Answer(step, response.status, decoded)

    async def watch(self, step: str, path: str, query: dict[str, str]) -> Answer:
        """A watch read to its end (the caller sets timeoutSeconds): the events in order."""
        params = {**query, "watch": "true"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=WATCH_IDLE_SECONDS)
        events: list[Any] = []
        async with self._session.get(self.url + path, params=params, timeout=timeout) as response:
            if response.status != 200:
                return Answer(step, response.status, json.loads(await response.text()))
            try:
                async for line in response.content:
                    if line.strip():
                        events.append(json.loads(line))
            except (TimeoutError, aiohttp.ClientPayloadError):
                events.append({"type": "CLIENT-CUT-OFF"})
        return Answer(step, 200, events)
