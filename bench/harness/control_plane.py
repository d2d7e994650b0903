"""Workload 6 hook: the control plane's spawn storm, to be filled in when control/ lands.

What it will measure (bench.md item 6): N users log in and spawn at once
against kubesim; the time until every one of them is routed, and the
control plane's CPU seconds per spawn. It will start its own podgate
(control enabled, embedded kubesim), never one of the proxy peers. Until
then `spawn_storm` reports why it did not run, and bench/run prints that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SpawnStormResult:
    users: int
    seconds_until_all_routed: float | None
    cpu_seconds_per_spawn: float | None
    note: str


def spawn_storm(users: int, *, workdir: Path, proxy_cpus: str | None) -> SpawnStormResult:
    """Not implemented yet: the control plane (login + spawner) does not exist."""
    del workdir, proxy_cpus
    return SpawnStormResult(
        users=users,
        seconds_until_all_routed=None,
        cpu_seconds_per_spawn=None,
        note="pending: the control plane is not built yet (hook: bench/harness/control_plane.py)",
    )
