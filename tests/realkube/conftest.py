"""Fixtures of the real-control-plane tests: one `realkube all` per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from realkube_kit import RealKube, build_realkube, start_realkube


@pytest.fixture(scope="session")
def realkube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealKube]:
    """The real kube-apiserver, controller-manager and scheduler, stopped after the session."""
    kube = start_realkube(build_realkube(), tmp_path_factory.mktemp("realkube"))
    try:
        yield kube
    finally:
        kube.stop()
