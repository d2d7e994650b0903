"""`podgate run` as a real process, stopped as soon as it is up: what it logged.

For tests about what podgate says at start. The first stdout line is the
banner scripts wait for; SIGTERM then ends the run, which must exit 0.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def stderr_until_banner(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> str:
    """Run `command` (a `podgate run`), wait for its banner, SIGTERM it; its stderr."""
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=dict(env),
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()  # bounded: a stuck start is killed below
        if not banner.startswith("podgate: public "):
            process.kill()
            raise AssertionError(f"no banner: {banner!r}; {process.communicate(timeout=10)[1]}")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    return stderr
