"""bench/fuzz.py in a tiny bounded form: it runs every property, counts inputs, reports failures.

The command runs for a few seconds as a real process; the failure path is
checked in process with a property of this file's own that is false, so
the runner must print hypothesis' minimal example and say which one failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.fuzz import FuzzTarget, counted_given_target, report_table, run_rounds

FUZZ_CLI = Path(__file__).resolve().parents[1] / "fuzz.py"
PROPERTIES = (
    "test_verify_random_input_never_authenticates",
    "test_mutated_cookie_never_names_another_user",
    "test_normalised_path_is_canonical",
    "test_plain_paths_resolve_like_posix",
    "test_no_path_escapes_its_user_prefix_by_encoding",
    "RouteTableAgainstModel",
)


def run_fuzz_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
    return subprocess.run(
        [sys.executable, str(FUZZ_CLI), *args],
        capture_output=True,
        text=True,
        # One round of every property takes a few CPU seconds; a busy machine stretches it.
        timeout=300,
        env=env,
        check=False,
    )


def test_short_run_passes_and_counts_inputs_of_every_property() -> None:
    done = run_fuzz_cli("--minutes", "0.01", "--round-scale", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS: no property failed" in done.stdout
    for name in PROPERTIES:
        row = next(line for line in done.stdout.splitlines() if f"`{name}`" in line)
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert int(cells[2].replace(",", "")) > 0, row  # inputs seen
        assert cells[-1] == "passed", row


def test_bad_budget_is_refused_with_a_message() -> None:
    done = run_fuzz_cli("--minutes", "0")
    assert done.returncode == 2
    assert "--minutes must be > 0" in done.stderr


@settings(max_examples=200, deadline=None, database=None)
@given(st.integers(min_value=0, max_value=10_000))
def below_a_thousand(n: int) -> None:
    assert n < 1000


def test_failing_property_stops_the_run_with_its_minimal_example() -> None:
    failing = counted_given_target("example", "below_a_thousand", below_a_thousand)
    untouched = FuzzTarget(area="example", name="never_run", run_round=lambda: None)
    failure = run_rounds([failing, untouched], seconds=30)
    assert failure is not None and failure.target is failing
    # Hypothesis words the report differently across versions and settings
    # ("Falsifying example", "Failing test case"): the minimal input is what counts.
    assert "AssertionError" in failure.report and "n=1000" in failure.report
    assert failing.inputs > 0 and untouched.rounds == 0
    table = report_table([failing, untouched], failure)
    assert "| `below_a_thousand` |" in table and "FAILED" in table
