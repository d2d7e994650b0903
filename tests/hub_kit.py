"""A podgate with its control plane, started in-process for tests, and a browser-like client.

`start_podgate(settings)` runs the real assembly (edge, control plane,
embedded kubesim) on port 0; `Browser` keeps cookies and fills the hub's
forms the way a person's browser does (CSRF field included).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from podgate.assembly import Podgate
from podgate.config import Config
from podgate.schema import build

PASSWORD = "correct horse"
COOKIE_SECRET = "test-cookie-secret-0123456789"

# Shared-process echo pods: start in milliseconds, echo HTTP and WebSocket,
# check the pod token (JUPYTER_TOKEN) like a notebook server does.
ECHO_SPAWNER: dict[str, Any] = {
    "image": "kubesim/echo",
    "jupyter_args": False,
    "readiness_path": None,
}

_XSRF = re.compile(r'name="_xsrf" value="([^"]+)"')
_FORM_ACTION = re.compile(r'<form method="post" action="(/hub/spawn[^"]*)"')
_NEXT = re.compile(r'name="next" value="([^"]*)"')


def podgate_config(settings: Mapping[str, Any] | None = None) -> Config:
    data: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "ops_listen": "127.0.0.1:0",
        "auth": {"kind": "dummy", "password": PASSWORD},
        "session": {"cookie_secrets": [COOKIE_SECRET]},
        "spawner": dict(ECHO_SPAWNER),
    }
    for key, value in (settings or {}).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return build(Config, data)


async def start_podgate(settings: Mapping[str, Any] | None = None) -> Podgate:
    """A started podgate, once ready (its pod watch has listed), as a load balancer waits."""
    podgate = Podgate(podgate_config(settings))
    await podgate.start()
    pods = podgate.control.pods if podgate.control is not None else None
    try:
        if pods is not None:
            async with asyncio.timeout(10):
                await pods.synced.wait()
    except TimeoutError:
        await podgate.stop()
        raise
    return podgate


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll (bounded) until check() holds; fails the test past `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def xsrf_of(page: str) -> str:
    match = _XSRF.search(page)
    assert match, "no _xsrf field in the page"
    return match.group(1)


# What an EventSource sends (spawn.js follows progress with one): the only request
# whose `?_xsrf=` the hub accepts instead of the X-XSRFToken header.
EVENT_SOURCE = {"Accept": "text/event-stream"}


class Browser:
    """One browser: a cookie jar, redirects followed like a browser unless asked not to."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def url(self, path: str) -> str:
        return self.base_url + path

    async def get(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        response = await self.session.get(self.url(path), **kwargs)
        await response.read()
        return response

    async def post(
        self, path: str, form: Mapping[str, str], **kwargs: Any
    ) -> aiohttp.ClientResponse:
        response = await self.session.post(self.url(path), data=dict(form), **kwargs)
        await response.read()
        return response

    async def xsrf(self, page_path: str = "/hub/login") -> str:
        """The CSRF token of a form on `page_path` (which sets the binding cookie)."""
        response = await self.get(page_path)
        return xsrf_of(await response.text())

    async def login(
        self, user: str, password: str = PASSWORD, next_url: str = "", **kwargs: Any
    ) -> aiohttp.ClientResponse:
        token = await self.xsrf("/hub/login")
        form = {"username": user, "password": password, "_xsrf": token, "next": next_url}
        return await self.post("/hub/login", form, **kwargs)

    async def press_start(self, page: aiohttp.ClientResponse) -> aiohttp.ClientResponse:
        """Press Start on the spawn page `page` shows: POST its form, as a person's click does."""
        text = await page.text()
        action = _FORM_ACTION.search(text)
        assert page.url.path.startswith("/hub/spawn/") and action, f"no Start form: {page.url}"
        next_value = _NEXT.search(text)
        form = {
            "_xsrf": xsrf_of(text),
            "next": html.unescape(next_value.group(1)) if next_value else "",
        }
        return await self.post(html.unescape(action.group(1)), form, allow_redirects=False)

    async def start(self, owner: str, next_url: str = "") -> aiohttp.ClientResponse:
        """Open `owner`'s spawn page and press Start: the 303 towards the progress page."""
        query = f"?next={quote(next_url, safe='')}" if next_url else ""
        return await self.press_start(await self.get(f"/hub/spawn/{quote(owner, safe='@')}{query}"))

    async def progress_path(self, user: str) -> str:
        """The progress stream's path with this browser's form token, as the spawn page has it.

        Request it with headers=EVENT_SOURCE, as the page's EventSource does.
        """
        token = await self.xsrf("/hub/home")
        return f"/hub/api/users/{user}/server/progress?_xsrf={quote(token, safe='')}"

    async def progress(self, user: str, seconds: float = 30.0) -> list[dict[str, Any]]:
        """Every progress event of `user`'s start until it ends (ready or failed)."""
        events = []
        async with self.session.get(
            self.url(await self.progress_path(user)),
            headers=EVENT_SOURCE,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            assert response.status == 200, await response.text()
            async for line in response.content:
                if line.startswith(b"data: "):
                    events.append(json.loads(line[6:]))
        return events

    async def start_server(self, user: str, seconds: float = 30.0) -> list[dict[str, Any]]:
        """Sign in as `user`, start the server, follow progress to the end.

        The browser's way is followed up to the progress page and not beyond:
        the server itself is not visited (no traffic on it, however fast it
        started); a test that wants traffic makes it.
        """
        response = await self.login(user, allow_redirects=False)
        for _ in range(10):
            location = response.headers.get("Location")
            if response.status not in (301, 302, 303, 307) or location is None:
                break
            if location.startswith("/hub/spawn-pending/"):
                break  # the progress page: what it shows is followed below
            response = await self.get(location, allow_redirects=False)
        assert response.status < 400, await response.text()
        return await self.progress(user, seconds)
