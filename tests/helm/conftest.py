"""The helm binary for the chart's tests (helm_kit.helm_binary says when they skip).

The real-API-server test reuses tests/realkube's deploy_kit (run podgate with
a ServiceAccount's token), whose modules import each other by bare name: that
directory goes on the path, as it is for the tests that live there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helm_kit import helm_binary

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "realkube"))


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()
