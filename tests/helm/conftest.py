"""The helm binary for the chart's tests (helm_kit.helm_binary says when they skip)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helm_kit import helm_binary


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()
