"""The real OpenID Provider for tests: npm's oidc-provider (provider.mjs), started on loopback.

`start_provider(workdir, ...)` installs it once (tests/oidc/install, cached by
the lock file), writes its config and users, runs `node provider.mjs` on a
free port of 127.0.0.1 and waits for it to listen; `stop()` ends it (always,
as the fixture's teardown). `pause()`/`resume()` freeze it (SIGSTOP: it
accepts connections but never answers, a provider that is slow), `restart()`
brings it back on the same port (with new signing keys, for rotation).

`walk_to_callback` signs in at its login and consent pages the way a browser
does and stops at the redirect back to podgate, so a test can look at (or
tamper with) the callback. `forge` signs an id_token with the provider's own
key (or another), for the verification tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
from joserfc import jwt
from joserfc.jwk import RSAKey

HERE = Path(__file__).resolve().parent
CLIENT_ID = "podgate"
CLIENT_SECRET = "podgate-test-client-secret-0123456789"
PASSWORD = "provider password"


def oidc_settings(provider: TestProvider, port: int, **oidc: Any) -> dict[str, Any]:
    return {
        "listen": f"127.0.0.1:{port}",
        "auth": {
            "kind": "oidc",
            "oidc": {
                "issuer": provider.issuer,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "scopes": ["openid", "profile", "groups"],
                "allowed_groups": ["lab"],
                "admin_groups": ["lab-admins"],
                **oidc,
            },
        },
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def install() -> Path:
    """The directory with oidc-provider's node_modules (npm ci the first time)."""
    done = subprocess.run(
        ["bash", str(HERE / "install")], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"tests/oidc/install failed: {done.stderr[-2000:]}"
    return Path(done.stdout.strip().splitlines()[-1])


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


def user(name: str, groups: list[str] | None = None, **claims: Any) -> dict[str, Any]:
    """A provider account: its password and its claims (preferred_username, groups, ...)."""
    return {
        "password": PASSWORD,
        "claims": {"preferred_username": name, "groups": groups or [], **claims},
    }


@dataclass
class TestProvider:
    workdir: Path
    port: int
    redirect_uris: list[str]
    users: dict[str, Any]
    keys: list[RSAKey] = field(default_factory=lambda: [new_key("key-1")])
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    conform_id_token_claims: bool = False
    github: bool = False  # also play GitHub's REST API (provider.mjs)
    process: asyncio.subprocess.Process | None = None
    log: Path = field(init=False)

    __test__ = False  # not a test class, whatever its name

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_users(self, users: dict[str, Any]) -> None:
        """Change the accounts (groups...): the provider reads them at every look-up."""
        self.users = users
        (self.workdir / "users.json").write_text(json.dumps(users))

    async def start(self) -> None:
        modules = await asyncio.to_thread(install)
        script = modules / "provider.mjs"
        shutil.copyfile(HERE / "provider.mjs", script)  # resolves oidc-provider beside it
        self.set_users(self.users)
        config = {
            "port": self.port,
            "issuer": self.issuer,
            "users_file": str(self.workdir / "users.json"),
            "keys": [k.as_dict(private=True) for k in self.keys],
            "conform_id_token_claims": self.conform_id_token_claims,
            "github": self.github,
            "clients": [
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": self.redirect_uris,
                    "post_logout_redirect_uris": self.post_logout_redirect_uris,
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    # GitHub's clients send their secret in the form body.
                    "token_endpoint_auth_method": (
                        "client_secret_post" if self.github else "client_secret_basic"
                    ),
                }
            ],
        }
        path = self.workdir / "provider.json"
        path.write_text(json.dumps(config))
        self.log = self.workdir / "provider.log"
        seen = self.log.stat().st_size if self.log.exists() else 0  # a restart appends
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                "node",
                str(script),
                str(path),
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while f"ready {self.issuer}" not in self.log.read_text(errors="replace")[seen:]:
            assert self.process.returncode is None, f"provider exited: {self.log.read_text()}"
            assert time.monotonic() < deadline, "the provider did not start in 30 s"
            await asyncio.sleep(0.05)

    def pause(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        os.killpg(process.pid, signal.SIGCONT)
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    async def restart(self, keys: list[RSAKey] | None = None) -> None:
        await self.stop()
        if keys is not None:
            self.keys = keys
        await self.start()

    def forge(
        self,
        claims: dict[str, Any],
        *,
        key: RSAKey | None = None,
        header: dict[str, Any] | None = None,
    ) -> str:
        """An id_token with `claims`, signed with the provider's first key (or `key`)."""
        signing = key or self.keys[0]
        head = {"alg": "RS256", "kid": signing.kid, **(header or {})}
        return jwt.encode(head, claims, signing)


async def start_provider(workdir: Path, **options: Any) -> TestProvider:
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    provider = TestProvider(
        workdir=workdir, port=options.pop("port", None) or free_port(), **options
    )
    await provider.start()
    return provider


_FORM = re.compile(r'<form method="post" action="([^"]+)"')


async def walk_to_callback(
    session: aiohttp.ClientSession, url: str, login: str, *, callback_prefix: str
) -> str:
    """Follow the provider from `url` (its /auth): sign in as `login`, consent, and return
    the callback URL it redirects to (not followed). Bounded to a few dozen steps."""
    for _ in range(30):
        if url.startswith(callback_prefix):
            return url
        async with session.get(url, allow_redirects=False) as response:
            body = await response.text()
            if response.status in (302, 303):
                url = urljoin(url, response.headers["Location"])
                continue
            assert response.status == 200, f"{response.status} at {url}: {body[:500]}"
        form = _FORM.search(body)
        assert form, f"no form at {url}: {body[:500]}"
        action = urljoin(url, form.group(1))
        data = {"login": login, "password": PASSWORD} if 'name="login"' in body else {}
        async with session.post(action, data=data, allow_redirects=False) as response:
            assert response.status in (302, 303), f"{response.status}: {await response.text()}"
            url = urljoin(action, response.headers["Location"])
    raise AssertionError("the provider never redirected back")
