"""Typed settings of the simulated kubelet, built once by the cluster assembly."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kubesim.kubelet.scheduler import NodeCapacity
from kubesim.kubelet.users import runs_as_root


def user_state_dir() -> Path:
    """Where a kubelet run by this user keeps its records: $XDG_STATE_HOME/kubesim."""
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "kubesim"


def _inherited_env() -> dict[str, str]:
    """What an image's environment would provide: this host's PATH, HOME, locale."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {key: os.environ[key] for key in keep if key in os.environ}


@dataclass(frozen=True)
class KubeletConfig:
    # Where pods' addresses come from, a range inside 127.0.0.0/8 such as
    # "127.42.0.0/16"; None: 127.2.0.0-127.254.255.255 from a random start, so
    # kubesims running at once on one machine do not hand out the same address.
    pod_network: str | None = None
    # The simulated nodes and their capacity.
    nodes: Sequence[NodeCapacity] = (NodeCapacity("kubesim-node"),)
    # Where the kubelet records the processes it runs (kubesim.kubelet.orphans), and
    # where at start it ends those a killed kubelet left running; None: no records
    # (user_state_dir() is what podgate run and podgate sim use).
    state_dir: Path | None = None
    # Where claim directories, pod scratch dirs and container logs live;
    # None: a temporary directory removed at stop (claims then last one run).
    data_dir: Path | None = None
    # Program for a container that sets no command, by image ("repo/name:tag"
    # or "repo/name"); its args are appended. Otherwise the image's last path
    # segment without tag is looked up on PATH (image "python:3.11" runs
    # "python"), and a missing program is an image that cannot be pulled.
    image_commands: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # Base environment of every container, before the pod's env.
    base_env: Mapping[str, str] = field(default_factory=_inherited_env)
    # Crash and image-pull back-off: first retry at once, then initial,
    # doubling up to max; reset after a container ran backoff_reset seconds.
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    backoff_reset: float = 600.0
    # Until a container is first ready its readiness probe is retried sooner
    # than periodSeconds, starting here and growing, so pods turn Ready as soon
    # as they serve (a real kubelet waits a whole period).
    probe_fast_period: float = 0.1
    # How often memory limits are checked against the containers' RSS.
    memory_check_interval: float = 0.5
    # Grace period used by stop() for whatever still runs.
    stop_grace: float = 2.0
    # Run each pod as an unprivileged Unix user of its own (kubesim.kubelet.users);
    # None: whenever the kubelet runs as root, the only way it can.
    isolate_pods: bool | None = None
    # Place pending pods on the nodes (setting spec.nodeName) and bind claims at
    # once, as kubesim's own cluster needs. False on a real API server, whose
    # kube-scheduler binds pods and PV controller binds claims: the kubelet then
    # only runs the pods already bound to one of its nodes.
    schedules: bool = True

    def isolates(self) -> bool:
        return runs_as_root() if self.isolate_pods is None else self.isolate_pods
