"""Headless Chromium for tests, driven over the DevTools protocol: start it, talk to a tab.

`chromium(workdir)` starts a headless Chromium on loopback (DevTools on a
free port, its own profile in `workdir`) and always stops it; `devtools(port)`
opens its first tab; `DevTools` sends commands and polls expressions, every
wait bounded.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

CHROMIUM = shutil.which("chromium")


class DevTools:
    """Just enough of the Chrome DevTools Protocol: send a command, get its result."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        answer = await self.answer(method, **params)
        assert "error" not in answer, answer
        return answer["result"]

    async def answer(self, method: str, **params: Any) -> dict[str, Any]:
        """The whole answer to a command: its result, or its error."""
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        for _ in range(10_000):  # events interleave with answers; skip them
            message = await asyncio.wait_for(self.ws.receive_json(), timeout=15)
            if message.get("id") == self.next_id:
                return message
        raise AssertionError(f"no answer to {method}")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, seconds: float = 20.0) -> Any:
        """Poll `expression` until it is truthy; its last value otherwise (the test then fails)."""
        value = None
        for _ in range(int(seconds / 0.1)):
            answer = await self.answer(
                "Runtime.evaluate", expression=expression, returnByValue=True
            )
            # An evaluation cut short by a navigation is "not yet", not a failure.
            value = answer.get("result", {}).get("result", {}).get("value")
            if value:
                return value
            await asyncio.sleep(0.1)
        return value

    async def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode((await self.call("Page.captureScreenshot", format="png"))["data"])
        await asyncio.to_thread(path.write_bytes, data)
        return data


@asynccontextmanager
async def chromium(workdir: Path) -> AsyncIterator[int]:
    """A headless Chromium with DevTools on a free port of 127.0.0.1 (yields the port); stopped
    after. Skips the test when chromium is not installed."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (tests/run installs it)")
    profile = workdir / "profile"
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "--window-size=900,720",
        # Stay on loopback: no updates, sync, pings or proxies.
        "--no-proxy-server",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):  # up to 30 s for a cold start on a busy machine
            if port_file.exists() and port_file.read_text().strip():
                break
            assert process.returncode is None, "chromium exited at start"
            await asyncio.sleep(0.1)
        yield int(port_file.read_text().split()[0])
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()


@asynccontextmanager
async def devtools(port: int) -> AsyncIterator[DevTools]:
    """DevTools on the browser's first tab."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        page = next(t for t in targets if t["type"] == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=64 * 2**20) as ws:
            tools = DevTools(ws)
            await tools.call("Page.enable")
            yield tools
