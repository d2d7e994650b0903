"""The suite's own layout: test modules are imported by basename, so basenames must differ."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_two_test_modules_share_a_basename() -> None:
    modules = [
        p
        for d in ("tests", "bench/tests")
        for p in (ROOT / d).rglob("*.py")
        if p.name != "conftest.py"
    ]
    shared = {name for name, n in Counter(p.name for p in modules).items() if n > 1}
    assert not shared, f"rename one of each: {sorted(shared)}"
