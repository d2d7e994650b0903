#!/usr/bin/env python3
"""bench/spawn_storm.py: N users log in and spawn at once (issue 4; issue 13 part 6).

Runs the storm of `harness/control_plane.py` one or more times and prints
a markdown table of the figures (medians over the repetitions): time until
all are routed, podgate's CPU seconds per spawn, per-user time to routed,
429 refusals, and the running users' p99 idle and during the storm.

The cluster is kubesim (default), or a real kube-apiserver with the real
controller-manager and scheduler and kubesim's kubelet as its node agent
(--server realkube; tests/realkube/build makes it, a no-op once cached), or
both, one after the other in the same run, side by side in one table.

  bench/spawn_storm.py --users 200
  bench/spawn_storm.py --users 1000 --server both
  bench/spawn_storm.py --users 1000 --repeat 3
  bench/spawn_storm.py --users 1000 --profile py-spy   # folded stacks of podgate

Stdlib + aiohttp; every storm is bounded by --deadline, and every process
it starts is stopped when it ends.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.harness.control_plane import SpawnStormResult, spawn_storm  # noqa: E402
from bench.harness.report import TIMES  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--users", type=int, default=200, help="users in the storm [%(default)s]")
    p.add_argument("--running", type=int, default=20, help="users running before [%(default)s]")
    p.add_argument("--idle-seconds", type=float, default=10.0, help="idle p99 window [10]")
    p.add_argument("--deadline", type=float, default=180.0, help="a storm stops after [180] s")
    p.add_argument("--repeat", type=int, default=1, help="storms, medians reported [1]")
    p.add_argument(
        "--server",
        choices=("kubesim", "realkube", "both"),
        default="kubesim",
        help="the cluster's API server [%(default)s]",
    )
    p.add_argument("--proxy-cpus", default=None, help="taskset CPU list for podgate [none]")
    p.add_argument(
        "--start-rate",
        type=float,
        default=None,
        help="podgate's spawner.start_rate: pod creates a second at most [no pacing]",
    )
    p.add_argument(
        "--profile",
        choices=("py-spy",),
        default=None,
        help="record podgate with py-spy (folded stacks, podgate.folded, in the workdir)",
    )
    p.add_argument("--workdir", type=Path, default=None, help="keep configs and logs here")
    args = p.parse_args(argv)
    if args.users < 1 or args.running < 1 or args.repeat < 1:
        p.error("--users, --running and --repeat must be at least 1")
    return args


def _median(results: list[SpawnStormResult], pick: Callable[[SpawnStormResult], float | None]):
    values = [v for v in (pick(r) for r in results) if v is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def table(results: list[SpawnStormResult]) -> str:
    """Markdown: one column per storm, then the median, per server side by side."""
    servers = list(dict.fromkeys(r.server for r in results))
    groups = [[r for r in results if r.server == server] for server in servers]
    head: list[str] = []
    for server, group in zip(servers, groups, strict=True):
        named = f"{server} " if len(servers) > 1 else ""
        head += [f"{named}storm {i + 1}" for i in range(len(group))] + [f"{named}median"]
    rows: list[tuple[str, Callable[[SpawnStormResult], float | None], str]] = [
        ("users routed", lambda r: r.routed, ",.0f"),
        ("users not routed", lambda r: r.failed, ",.0f"),
        ("seconds until all routed ↓", lambda r: r.seconds_until_all_routed, ".1f"),
        ("per user, first request to routed: p50 (s) ↓", lambda r: r.routed_p50_seconds, ".1f"),
        ("per user, first request to routed: p99 (s) ↓", lambda r: r.routed_p99_seconds, ".1f"),
        ("429 refusals (retried after Retry-After)", lambda r: r.refused_429, ",.0f"),
        ("podgate CPU ms per spawn ↓", _cpu_ms, ".1f"),
        ("cluster CPU seconds during the storm", lambda r: r.cluster_cpu_seconds, ".1f"),
        ("running users: p99 idle (ms)", lambda r: r.idle_p99_ms, ".2f"),
        ("running users: p99 during the storm (ms)", lambda r: r.storm_p99_ms, ".2f"),
        ("storm p99 ÷ idle p99 ↓", lambda r: r.p99_ratio, ".2f"),
        ("probe samples idle / storm", None, ""),  # type: ignore[list-item]
    ]
    lines = [
        "| figure | " + " | ".join(head) + " |",
        "| --- |" + " ---: |" * len(head),
    ]
    for label, pick, spec in rows:
        cells = []
        for group in groups:
            if pick is None:
                cells += [f"{r.idle_samples:,} / {r.storm_samples:,}" for r in group] + [""]
            else:
                cells += [_fmt(pick(r), spec) for r in group]
                cells.append(_fmt(_median(group, pick), spec))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cpu_ms(r: SpawnStormResult) -> float | None:
    return None if r.cpu_seconds_per_spawn is None else r.cpu_seconds_per_spawn * 1000


def goals(results: list[SpawnStormResult]) -> str:
    """The issue's goals against the medians (stated for 1,000 users), per server."""
    servers = list(dict.fromkeys(r.server for r in results))
    if len(servers) > 1:
        return "\n\n".join(
            f"{server}:\n\n" + goals([r for r in results if r.server == server])
            for server in servers
        )
    seconds = _median(results, lambda r: r.seconds_until_all_routed)
    ratio = _median(results, lambda r: r.p99_ratio)
    routed = "—" if seconds is None else f"{seconds:.1f} s {'met' if seconds <= 60 else 'NOT met'}"
    p99 = "—" if ratio is None else f"{ratio:.2f}{TIMES} {'met' if ratio < 2 else 'NOT met'}"
    return (
        "| goal (issue 4, for 1,000 users) | median |\n| --- | --- |\n"
        f"| all routed within 60 s | {routed} |\n"
        f"| running users' p99 under 2{TIMES} idle | {p99} |"
    )


def _profiler(workdir: Path, which: str | None) -> list[str]:
    if which is None:
        return []
    exe = shutil.which("py-spy")
    if exe is None:
        sys.exit("py-spy is not installed (pip install py-spy)")
    return [
        exe,
        "record",
        "--format",
        "raw",
        "--rate",
        "200",
        "-o",
        str(workdir / "podgate.folded"),
        "--",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = []
    servers = ("kubesim", "realkube") if args.server == "both" else (args.server,)
    runs = [(server, i) for server in servers for i in range(args.repeat)]
    with tempfile.TemporaryDirectory(prefix="podgate-storm-") as tmp:
        workdir = args.workdir or Path(tmp)
        for server, i in runs:
            run_dir = workdir / f"{server}-storm-{i + 1}"
            run_dir.mkdir(parents=True, exist_ok=True)
            tag = f"[{server} storm {i + 1}/{args.repeat}]"
            print(f"{tag} {args.users} users ...", file=sys.stderr)
            result = spawn_storm(
                args.users,
                workdir=run_dir,
                proxy_cpus=args.proxy_cpus,
                running=args.running,
                idle_seconds=args.idle_seconds,
                deadline=args.deadline,
                podgate_wrapper=_profiler(run_dir, args.profile),
                start_rate=args.start_rate,
                server=server,
            )
            print(f"{tag} {result.note}", file=sys.stderr)
            results.append(result)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"### Spawn storm, {args.users:,} users, {when}\n")
    print(table(results) + "\n")
    print(goals(results) + "\n")
    for (server, i), r in zip(runs, results, strict=True):
        print(f"- {server} storm {i + 1}: {r.note}")
        for failure in r.failures[:5]:
            print(f"  - {failure}")
    return 0 if all(r.failed == 0 and r.seconds_until_all_routed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
