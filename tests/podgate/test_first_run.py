"""The first minutes with `podgate run`: the start block, and a taken port said plainly.

Real processes: `podgate run` with the embedded kubesim prints where to go,
the password that then really signs in, how to become admin and where the
ops port is; with a port held by this test it stops before printing
anything else, naming the address and its config key.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hub_kit import ECHO_SPAWNER, Browser

from podgate.ports import ListenFailed
from podgate.welcome import browser_url
from tests.integration.jupyter_kit import start_podgate_process

CHECKOUT = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
READY = re.compile(r"podgate is ready: open (http://localhost:(\d+))\n")
PASSWORD = re.compile(r"  sign in   any user name, password (\S+)\n")
OPS = re.compile(r"  ops port  http://localhost:(\d+) ")


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port this test listens on for its whole length."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


async def test_the_start_block_says_where_to_go_and_its_password_signs_in(tmp_path: Path) -> None:
    config = {
        "listen": "127.0.0.1:0",
        "ops_listen": "127.0.0.1:0",
        "auth": {"kind": "dummy", "admins": ["root"]},
        "spawner": dict(ECHO_SPAWNER),
    }
    podgate = await start_podgate_process(config, tmp_path, env=CHECKOUT)
    try:
        ready = await podgate.wait_for_line(READY, 20)
        printed = podgate.out.read_text()
        assert ready.group(2) == podgate.public.rsplit(":", 1)[1]
        password = PASSWORD.search(printed)
        assert password, printed
        ops = OPS.search(printed)
        assert ops and ops.group(1) == podgate.ops.rsplit(":", 1)[1], printed
        assert "  admin     sign in as root (auth.admins), then open /hub/admin\n" in printed
        for typed, signed_in in ((password.group(1) + "x", False), (password.group(1), True)):
            async with Browser(podgate.public) as person:
                answer = await person.login("root", typed, allow_redirects=False)
                assert (answer.status == 303) is signed_in
        # The password is on stdout for the person, never in a log line.
        assert password.group(1) not in podgate.log.read_text()
    finally:
        await podgate.end()


@pytest.mark.parametrize("key", ["listen", "ops_listen"])
def test_a_taken_port_is_named_with_its_key_before_anything_else(
    tmp_path: Path, held_port: int, key: str
) -> None:
    config = {"listen": "127.0.0.1:0", "ops_listen": "127.0.0.1:0"}
    config[key] = f"127.0.0.1:{held_port}"
    path = tmp_path / "podgate.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "podgate.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **CHECKOUT},
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""  # no password, no banner
    assert result.stderr == (
        f"podgate: cannot listen on 127.0.0.1:{held_port} ({key}): the address is already "
        f"in use (is another podgate running?); set {key} in the config file\n"
    )


async def test_a_port_taken_after_the_check_is_still_named(
    make_podgate: Any, held_port: int
) -> None:
    with pytest.raises(ListenFailed) as failed:
        await make_podgate({"ops_listen": f"127.0.0.1:{held_port}"})
    assert failed.value.key == "ops_listen"
    assert f"127.0.0.1:{held_port} (ops_listen)" in str(failed.value)


@pytest.mark.parametrize(
    ("bound", "shown"),
    [
        ("http://0.0.0.0:8000", "http://localhost:8000"),
        ("http://[::]:8000", "http://localhost:8000"),
        ("http://127.0.0.1:8081", "http://localhost:8081"),
        ("http://10.1.2.3:8000", "http://10.1.2.3:8000"),
    ],
)
def test_the_url_to_open_is_localhost_for_wildcard_and_loopback(bound: str, shown: str) -> None:
    assert browser_url(bound) == shown
