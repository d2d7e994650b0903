"""A real podgate's scrape as outside tools read it: promtool, and the Grafana dashboard in deploy/.

promtool (Debian's prometheus package) must accept the exposition with no
error and no lint warning; the dashboard's queries must parse as PromQL
(promtool checks them as rules) and name only metrics and labels that the
scrape really carries, so a rename cannot silently blank a panel.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from subprocess import PIPE, STDOUT
from typing import Any

import aiohttp
import pytest
import yaml
from hub_kit import Browser
from prometheus_client.parser import text_string_to_metric_families

MakePodgate = Callable[..., Awaitable[Any]]

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian package prometheus)"
)
DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "podgate-dashboard.json"
# Labels Prometheus adds to every series at scrape time, and the histogram bucket label.
SCRAPE_LABELS = {"instance", "job", "le"}
METRIC_NAME = re.compile(r"\b((?:podgate|process)_[a-z0-9_]+)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SELECTOR_LABEL = re.compile(r"[{,]\s*([a-z_]+)\s*(?:=~|!~|!=|=)")


async def busy_scrape(pg: Any) -> str:
    """The exposition after sign-ins (good and bad) and traffic the edge could not route."""
    async with Browser(pg.public_url) as browser:
        assert (await browser.login("ada", password="wrong")).status == 403
        assert (await browser.login("ada", next_url="/hub/home")).status == 200
        assert (await browser.get("/user/nobody/", allow_redirects=False)).status in (302, 303)
    async with aiohttp.ClientSession() as session, session.get(pg.ops_url + "/metrics") as r:
        assert r.status == 200
        return await r.text()


def exported(text: str) -> dict[str, set[str]]:
    """Every series name a query may use (with _total, _bucket... suffixes), and its labels."""
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        labels = {label for s in family.samples for label in s.labels}
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_count", "_sum"),
        }.get(family.type, ("",))
        for suffix in suffixes:
            names[family.name + suffix] = labels
        for s in family.samples:
            names.setdefault(s.name, set()).update(s.labels)
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel."""
    board = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


@needs_promtool
async def test_promtool_accepts_a_real_scrape(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    text = await busy_scrape(pg)
    assert "podgate_login_duration_seconds_count" in text
    assert PROMTOOL is not None
    promtool = await asyncio.create_subprocess_exec(
        PROMTOOL, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
    )
    out, _ = await asyncio.wait_for(promtool.communicate(text.encode()), timeout=30)
    said = out.decode()
    assert promtool.returncode == 0, said
    assert said.strip() == "", said  # no lint warnings either


def test_the_dashboard_is_a_grafana_dashboard_with_a_datasource_variable() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert 36 <= board["schemaVersion"] <= 41
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    titles = " ".join(panel["title"] for panel in board["panels"]).lower()
    for subject in (
        "requests",
        "latency",
        "websockets",
        "cookie",
        "running servers",
        "active",
        "spawn",
        "kubernetes api",
        "watch",
        "culled",
        "event-loop",
    ):
        assert subject in titles, subject


async def test_every_dashboard_query_names_only_what_podgate_exports(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate()
    names = exported(await busy_scrape(pg))
    queries = dashboard_queries()
    assert len(queries) >= 20
    for title, expr in queries:
        used = METRIC_NAME.findall(expr)
        assert used, f"{title}: no podgate metric in {expr}"
        missing = [name for name in used if name not in names]
        assert not missing, f"{title}: {missing} not in a real scrape"
        labels = set().union(*(names[name] for name in used)) | SCRAPE_LABELS
        for group in GROUPING.findall(expr):
            grouped = {label.strip() for label in group.split(",") if label.strip()}
            assert grouped <= labels, f"{title}: no label {grouped - labels} on {used}"
        for label in SELECTOR_LABEL.findall(expr):
            assert label in labels, f"{title}: no label {label} on {used}"


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # Grafana's variables replaced by what they expand to, the queries checked as rules.
    rules = [
        {
            "record": f"podgate:dashboard_query_{i}",
            "expr": expr.replace("$__rate_interval", "5m").replace("$instance", ".*"),
        }
        for i, (_, expr) in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, timeout=30
    )
    said = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, said
    assert f"SUCCESS: {len(rules)} rules found" in said, said


@needs_promtool
def test_promtool_refuses_a_broken_exposition() -> None:
    # The check is real: a sample with no TYPE family it belongs to and a bad value fails.
    broken = b"# TYPE podgate_routes gauge\npodgate_routes not-a-number\n"
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=broken, capture_output=True, timeout=30
    )
    assert result.returncode != 0
