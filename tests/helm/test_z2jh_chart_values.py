"""`podgate import-z2jh --chart-values`: the chart renders the config the importer writes.

For every values file of tests/z2jh, the importer's chart values go through
the real helm (values.schema.json judges them) and the config.yaml the chart
renders must mean what the importer's own config output means.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from helm_kit import ROOT, template

VALUES = sorted((ROOT / "tests/z2jh/values").glob("*.yaml"))
NAMESPACE = "hub-z2jh"


def imported(values: Path, *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "podgate.cli", "import-z2jh", str(values),
         "--namespace", NAMESPACE, *extra],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(yaml.safe_load(done.stdout))


def meaning(config: dict[str, Any]) -> dict[str, Any]:
    """The config with every unset or default-valued key dropped, so equal means equal."""
    defaults: dict[str, Any] = {
        "start_timeout": 300, "run_as_user": 1000, "fs_group": 100, "port": 8888,
        "image_pull_policy": "IfNotPresent", "concurrent_spawn_limit": 100, "every": 60,
        "concurrency": 10, "cull_admin_users": True, "default": False, "max_age": None,
    }  # fmt: skip

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            kept = {k: strip(v) for k, v in value.items()}
            return {k: v for k, v in kept.items()
                    if v not in ({}, [], None, "") and defaults.get(k, object()) != v}  # fmt: skip
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return dict(strip(config))


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_the_chart_renders_the_imported_config(helm: Path, values: Path, tmp_path: Path) -> None:
    chart_values = tmp_path / "values.yaml"
    chart_values.write_text(yaml.safe_dump(imported(values, "--chart-values")))
    objects = template(helm, NAMESPACE, [chart_values])
    config_map = next(o for o in objects if o["metadata"]["name"] == "podgate-config")
    rendered = yaml.safe_load(config_map["data"]["config.yaml"])
    assert meaning(rendered) == meaning(imported(values))
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_the_comparison_sees_a_difference(helm: Path, tmp_path: Path) -> None:
    """The check above can fail: a chart value the importer did not write shows."""
    values = VALUES[0]
    given = imported(values, "--chart-values")
    given["singleuser"]["startTimeout"] = 42
    chart_values = tmp_path / "values.yaml"
    chart_values.write_text(yaml.safe_dump(given))
    objects = template(helm, NAMESPACE, [chart_values])
    config_map = next(o for o in objects if o["metadata"]["name"] == "podgate-config")
    rendered = yaml.safe_load(config_map["data"]["config.yaml"])
    assert meaning(rendered) != meaning(imported(values))
