"""`podgate run` as a user starts it: a real process, a config file, signals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

PODGATE = [sys.executable, "-m", "podgate.cli"]
BANNER = re.compile(r"podgate: public (http://\S+)  ops (http://\S+)")


def run_podgate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PODGATE, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("spawner: {imagee: x}\n", "spawner.imagee"),
        ("listen: nowhere\n", "listen"),
        ("routes: [{path: /a, target: 'http://127.0.0.1:1', usr: x}]\n", "routes[0].usr"),
    ],
)
def test_a_bad_config_stops_the_start_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    result = run_podgate("run", "--config", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"podgate: config error: {key}:")
    assert result.stdout == ""


def test_a_weak_secret_in_the_environment_is_refused(tmp_path: Path) -> None:
    result = run_podgate("run", env={"PODGATE_COOKIE_SECRET": "short"})
    assert result.returncode == 2
    assert "PODGATE_COOKIE_SECRET" in result.stderr


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    result = run_podgate("run", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node-only"], "podgate: --node-only needs --kubeconfig FILE"),
        (["--context", "x"], "podgate: --context only goes with --node-only"),
        (["--data-dir", "d"], "podgate: --data-dir only goes with --node-only"),
        (["--node-only", "--kubeconfig", "k", "--plain-http"], "podgate: --plain-http does not go"),
    ],
)
def test_sim_node_only_flags_go_together(args: list[str], message: str) -> None:
    result = run_podgate("sim", *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(message) and "Traceback" not in result.stderr


def test_no_command_prints_help() -> None:
    result = run_podgate()
    assert result.returncode == 2
    assert "run" in result.stdout and "sim" in result.stdout


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = run_podgate("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"podgate {version('podgate')}"


def help_entries(text: str) -> dict[str, str]:
    """Each option of an argparse --help text, with its help joined onto one line."""
    entries: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            entries[current] = line
        elif current and line.startswith("   "):
            entries[current] += " " + line.strip()
        else:
            current = ""
    return entries


@pytest.mark.parametrize("command", ["run", "sim", "hash-password"])
def test_every_option_has_a_help_line_with_its_default(command: str) -> None:
    result = run_podgate(command, "--help")
    assert result.returncode == 0
    entries = help_entries(result.stdout)
    options = [name for name in entries if name != "-h"]
    assert options, result.stdout
    for name in options:
        assert "(default:" in entries[name], f"{command} {name}: {entries[name]!r}"


@contextlib.contextmanager
def background(args: list[str], **env: str) -> Iterator[subprocess.Popen[str]]:
    """A process with piped output that is always killed and reaped at the end."""
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


@pytest.fixture
def podgate_process(
    tmp_path: Path, upstream_url: str
) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    config = tmp_path / "config.yaml"
    config.write_text(
        "listen: 127.0.0.1:0\nops_listen: 127.0.0.1:0\ncontrol: {enabled: false}\n"
        f"routes: [{{path: /docs/, target: '{upstream_url}'}}]\n"
    )
    args = [*PODGATE, "run", "--config", str(config)]
    with background(args, CONFIGPROXY_AUTH_TOKEN="t0ken") as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = BANNER.search(line)
        assert match, f"no banner: {line!r} {process.stderr.read() if process.poll() else ''}"
        yield match.group(1), match.group(2), process


@pytest.fixture
async def upstream_url() -> AsyncIterator[str]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"docs at {request.path}")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def test_run_serves_config_routes_and_the_ops_port_then_stops_on_sigterm(
    podgate_process: tuple[str, str, subprocess.Popen[str]],
) -> None:
    public, ops, process = podgate_process
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{public}/docs/index.html") as response:
            assert response.status == 200
            assert await response.text() == "docs at /docs/index.html"
        async with client.get(f"{public}/elsewhere") as response:
            assert response.status == 404  # proxy-only: no route is a 404, as CHP
        async with client.get(f"{ops}/readyz") as response:
            assert response.status == 200
        async with client.get(
            f"{ops}/api/routes", headers={"Authorization": "token t0ken"}
        ) as response:
            assert response.status == 200
            assert "/docs" in await response.json()
        async with client.get(f"{ops}/metrics") as response:
            assert "podgate_requests_total" in await response.text()
    host, port = public.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert b" 400 " in status_line
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert process.stderr is not None
    # A client's malformed request is expected on a public port: no traceback.
    assert "Traceback" not in process.stderr.read()


def test_sim_writes_a_kubeconfig_kubectl_uses(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig.yaml"
    args = [*PODGATE, "sim", "--listen", "127.0.0.1:0", "--kubeconfig", str(kubeconfig)]
    with background(args) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("kubesim listening on https://127.0.0.1:"), line
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig), "get", "namespaces", "-o", "name"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "namespace/default" in result.stdout.split()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
