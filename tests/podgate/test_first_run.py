"""The first minutes with `podgate run`: the start block, and a taken port said plainly.

Real processes: `podgate run` with the embedded kubesim prints where to go,
the password that then really signs in, how to become admin and where the
ops port is; with a port held by this test it stops before printing
anything else, naming the address and its config key.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from podgate.ports import ListenFailed

CHECKOUT = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port this test listens on for its whole length."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


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
