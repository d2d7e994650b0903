"""podgate as a process under signals: SIGTERM drains what is in flight, then exits 0."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

BANNER = re.compile(r"podgate: public (http://\S+)  ops (http://\S+)")


@pytest.fixture
async def slow_pod() -> AsyncIterator[str]:
    """A pod whose answers take a second: long enough to be in flight at SIGTERM."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.Response(text="finished")

    app = web.Application()
    app.router.add_get("/{tail:.*}", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def test_sigterm_lets_requests_in_flight_finish_then_exits_zero(
    tmp_path: Path, slow_pod: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "listen: 127.0.0.1:0\nops_listen: 127.0.0.1:0\ncontrol: {enabled: false}\n"
        f"routes: [{{path: /, target: '{slow_pod}'}}]\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "podgate.cli",
        "run",
        "--config",
        str(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        match = BANNER.search(line)
        assert match, line
        public = match.group(1)
        async with aiohttp.ClientSession() as client:
            in_flight = [asyncio.ensure_future(client.get(f"{public}/work/{i}")) for i in range(5)]
            await asyncio.sleep(0.3)  # the requests have reached the slow pod
            process.send_signal(signal.SIGTERM)
            responses = await asyncio.wait_for(asyncio.gather(*in_flight), 10)
            for response in responses:
                assert response.status == 200
                assert await response.text() == "finished"
                response.release()
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert process.stderr is not None
        assert b"Traceback" not in await process.stderr.read()
        # Stopped means stopped: nothing listens on the public port any more.
        host, port = public.removeprefix("http://").rsplit(":", 1)
        with pytest.raises(OSError):
            await asyncio.open_connection(host, int(port))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
