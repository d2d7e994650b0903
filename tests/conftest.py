"""Suite-wide rules: no test leaves tasks behind, and CI tolerates no skipped test."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# kubernetes_asyncio's session trusts proxy variables: keep loopback direct.
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

# Processes the tests start (podgate, kubesim) import this checkout, whatever
# checkout an editable install elsewhere points at.
_REPO = str(Path(__file__).resolve().parent.parent)
_OTHERS = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != _REPO]
os.environ["PYTHONPATH"] = os.pathsep.join([_REPO, *_OTHERS])


@pytest.fixture(autouse=True)
async def no_pending_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail a test that leaves tasks running on its loop after its fixtures stopped."""
    before = set(asyncio.all_tasks())
    yield
    for _ in range(20):  # let cancelled tasks finish unwinding
        leftover = [
            t
            for t in asyncio.all_tasks()
            if t not in before and t is not asyncio.current_task() and not t.done()
        ]
        if not leftover:
            return
        await asyncio.sleep(0.01)
    for task in leftover:
        task.cancel()
    names = ", ".join(sorted(t.get_name() + ":" + repr(t.get_coro()) for t in leftover))
    pytest.fail(f"test left {len(leftover)} task(s) pending: {names}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Run as root, kubesim runs pods as users of their own: say so if they cannot run Python."""
    if os.geteuid() != 0:
        return
    from kubesim.kubelet.users import closed_to_others

    closed = closed_to_others(Path(sys.executable).parent)
    if closed is not None:
        terminalreporter.write_line(
            f"WARNING: run as root, kubesim runs each pod as a user of its own, who cannot "
            f"pass {closed} to run {sys.executable}: tests with pods fail (tests/run lets "
            f"them pass; or chmod o+x {closed})",
            red=True,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With PODGATE_NO_SKIPS=1 (tests/run sets it) a skipped test fails the run."""
    if os.environ.get("PODGATE_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(
            f"PODGATE_NO_SKIPS: {len(skipped)} test(s) were skipped; every part of the suite "
            "is required here (install what they need):",
            red=True,
        )
        for report in skipped:
            reporter.write_line(f"  {report.nodeid}: {report.longrepr[-1]}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
async def make_podgate() -> AsyncIterator[object]:
    """Start podgates with the control plane (tests/hub_kit.py); all stopped afterwards."""
    from hub_kit import start_podgate

    started = []

    async def make(settings: dict | None = None):  # type: ignore[no-untyped-def]
        podgate = await start_podgate(settings)
        started.append(podgate)
        return podgate

    yield make
    for podgate in reversed(started):
        await podgate.stop()
