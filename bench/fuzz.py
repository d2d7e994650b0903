#!/usr/bin/env python3
"""Fuzz: the CI suite's decoder properties, run for minutes instead of seconds.

Runs the very properties of tests/reliability/test_fuzz_decoders.py (cookie
decoder, path normaliser, route table against a naive model) by importing
them, round after round, until `--minutes` are spent, then prints how many
inputs each property saw. The first property that fails stops the run: the
minimal (shrunk) example hypothesis found is printed and the exit status is 1.

Why import rather than run the file through pytest: the properties and
their strategies stay defined once (in the CI file), the run is bounded by
wall-clock time (pytest can only be given example counts), and the input
counts come straight from the property calls instead of from parsing
hypothesis' statistics output.

It must never run unbounded (every round has an example count, the whole
run a deadline checked between rounds) and it never opens a socket or
starts a process: these properties are pure functions over strings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

REPO_ROOT = Path(__file__).resolve().parents[1]
RELIABILITY_TESTS = REPO_ROOT / "tests" / "reliability"
# Examples per round of each @given property: 300 (the CI count) x this scale.
# A round is a few seconds, so the deadline is overshot by at most that.
ROUND_SCALE = 10


@dataclass
class FuzzTarget:
    """One property: what it checks (the area of issue 7) and how many inputs it saw."""

    area: str
    name: str
    run_round: Callable[[], None]
    inputs: int = 0
    rounds: int = 0
    seconds: float = 0.0


@dataclass
class Failure:
    """The property that failed and hypothesis' report of its minimal example."""

    target: FuzzTarget
    report: str


def load_properties(round_scale: int) -> ModuleType:
    """Import the CI fuzz module with each @given property sized for one round."""
    # The CI module sizes itself from this variable when it is imported.
    os.environ["PODGATE_RELIABILITY_SCALE"] = str(round_scale)
    for path in (REPO_ROOT, REPO_ROOT / "tests", RELIABILITY_TESTS):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import test_fuzz_decoders  # only importable once sys.path is set

    return test_fuzz_decoders


def counted_given_target(area: str, name: str, given_test: Any) -> FuzzTarget:
    """A target around a @given test; its inner test is wrapped to count inputs."""
    target = FuzzTarget(area=area, name=name, run_round=given_test)
    inner = given_test.hypothesis.inner_test

    def counting_inner(*args: Any, **kwargs: Any) -> None:
        target.inputs += 1
        inner(*args, **kwargs)

    # hypothesis documents inner_test as replaceable, for exactly this kind of wrapping.
    given_test.hypothesis.inner_test = counting_inner
    return target


def route_table_target(module: ModuleType, machines_per_round: int) -> FuzzTarget:
    """The stateful route-table model, counted in operation sequences (machines)."""
    machine_class = module.RouteTableAgainstModel
    round_settings = settings(
        max_examples=machines_per_round,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    target = FuzzTarget(area="route table", name="RouteTableAgainstModel", run_round=lambda: None)

    class CountedMachine(machine_class):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            target.inputs += 1
            super().__init__()

    CountedMachine.__name__ = machine_class.__name__
    target.run_round = lambda: run_state_machine_as_test(CountedMachine, settings=round_settings)
    return target


def decoder_targets(module: ModuleType, round_scale: int) -> list[FuzzTarget]:
    """Every property of the CI fuzz module, with the area of issue 7 it covers."""
    given_properties = [
        ("cookie decoder", "test_verify_random_input_never_authenticates"),
        ("cookie decoder", "test_mutated_cookie_never_names_another_user"),
        ("path normaliser", "test_normalised_path_is_canonical"),
        ("path normaliser", "test_plain_paths_resolve_like_posix"),
        ("route table", "test_no_path_escapes_its_user_prefix_by_encoding"),
    ]
    targets = [counted_given_target(a, n, getattr(module, n)) for a, n in given_properties]
    targets.append(route_table_target(module, machines_per_round=150 * round_scale))
    return targets


def run_rounds(targets: list[FuzzTarget], seconds: float) -> Failure | None:
    """Run one round of every target in turn until `seconds` are spent or one fails."""
    deadline = time.monotonic() + seconds
    # At least one round of each, then as many as fit; bounded by the deadline.
    max_rounds = 1_000_000
    for _ in range(max_rounds):
        for target in targets:
            started = time.monotonic()
            try:
                target.run_round()
            except Exception as e:  # any exception is the property failing
                target.seconds += time.monotonic() - started
                report = "".join(traceback.format_exception(e))
                return Failure(target=target, report=report)
            target.seconds += time.monotonic() - started
            target.rounds += 1
        if time.monotonic() >= deadline:
            return None
    return None


def report_table(targets: list[FuzzTarget], failure: Failure | None) -> str:
    """Markdown table: area, property, inputs, rounds, seconds, result."""
    lines = [
        "| area | property | inputs | rounds | seconds | inputs/s | result |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for t in targets:
        failed = failure is not None and failure.target is t
        rate = t.inputs / t.seconds if t.seconds > 0 else 0.0
        lines.append(
            f"| {t.area} | `{t.name}` | {t.inputs:,} | {t.rounds} | {t.seconds:,.1f} "
            f"| {rate:,.0f} | {'FAILED' if failed else 'passed'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Fuzz the cookie decoder, path normaliser and route table for a fixed time."
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="time budget (default 10)")
    parser.add_argument(
        "--round-scale",
        type=int,
        default=ROUND_SCALE,
        help="examples per round, as a multiple of the CI count (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.round_scale < 1:
        parser.error("--minutes must be > 0 and --round-scale >= 1")

    module = load_properties(args.round_scale)
    targets = decoder_targets(module, args.round_scale)
    started = time.monotonic()
    failure = run_rounds(targets, seconds=args.minutes * 60)
    elapsed = time.monotonic() - started

    print(f"Fuzz run: {elapsed / 60:.1f} min, {sum(t.inputs for t in targets):,} inputs")
    print(report_table(targets, failure))
    if failure is not None:
        print(f"\nFAILED: {failure.target.area}: {failure.target.name}")
        print(failure.report)
        return 1
    print("\nPASS: no property failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
