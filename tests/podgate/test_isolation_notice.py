"""`podgate run` with the embedded kubesim says at start whether users are isolated.

Run as root, each user's pod gets a Unix user of its own: nothing to say.
Run as an unprivileged user (here `nobody`, through setpriv), every pod runs
as that one user: podgate says plainly, once, that users are not isolated.
The decision reads the real os.geteuid() of a real process.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from banner_kit import stderr_until_banner

NOBODY = 65534
CONFIG = (
    "listen: 127.0.0.1:0\nops_listen: 127.0.0.1:0\nauth: {kind: dummy, password: notice-password}\n"
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="running podgate as another user needs root and setpriv",
)


@pytest.fixture
def nobodys_dir() -> Iterator[Path]:
    """A HOME and working directory the unprivileged run may write to."""
    path = Path(tempfile.mkdtemp(prefix="podgate-notice-"))
    os.chown(path, NOBODY, NOBODY)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def podgate_log(prefix: list[str], home: Path) -> str:
    """Start `podgate run` (behind `prefix`), wait for its banner, stop it; what it logged."""
    config = home / "podgate.yaml"
    config.write_text(CONFIG)
    config.chmod(0o644)
    return stderr_until_banner(
        [*prefix, sys.executable, "-m", "podgate.cli", "run", "--config", str(config)],
        cwd=home,
        env={**os.environ, "HOME": str(home)},
    )


def notices(log: str) -> list[str]:
    return [line for line in log.splitlines() if "NOT isolated" in line]


def test_run_as_an_unprivileged_user_podgate_says_users_are_not_isolated(
    nobodys_dir: Path,
) -> None:
    # CAP_DAC_READ_SEARCH only lets `nobody` reach the interpreter wherever it is installed.
    prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    prefix += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    found = notices(podgate_log(prefix, nobodys_dir))
    assert len(found) == 1, found
    assert " WARNING " in found[0] and f"uid {NOBODY}" in found[0]


def test_run_as_root_podgate_does_not_warn_about_isolation(nobodys_dir: Path) -> None:
    assert notices(podgate_log([], nobodys_dir)) == []
