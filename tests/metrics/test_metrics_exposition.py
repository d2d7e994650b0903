"""What a Prometheus scrape of podgate shows, read back with a real parser (and promtool)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from metrics import EdgeStats, PodgateMetrics

PROMTOOL = shutil.which("promtool")


def samples(metrics: PodgateMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def busy_stats() -> EdgeStats:
    stats = EdgeStats()
    stats.request_done("GET", 200, "user", 0.0004)
    stats.request_done("GET", 200, "user", 0.003)
    stats.request_done("POST", 503, "api", 12.0)
    stats.request_done("BREW", 400, "none", 0.001)  # an invented method
    stats.request_done("PURGE", 400, "none", 0.001)
    stats.upstream_error("refused")
    stats.upstream_error("timeout")
    stats.upstream_error("timeout")
    stats.cookie_rejected("expired")
    stats.websocket_opened()
    stats.websocket_opened()
    stats.websocket_closed()
    stats.bytes_to_upstream += 1234
    stats.bytes_to_client += 98765
    return stats


def test_edge_counters_appear_under_prometheus_names() -> None:
    found = samples(PodgateMetrics(busy_stats(), table_size=lambda: 42))
    assert value(found, "podgate_requests_total", method="GET", code="200", route_kind="user") == 2
    assert value(found, "podgate_requests_total", method="POST", code="503", route_kind="api") == 1
    assert value(found, "podgate_upstream_errors_total", kind="timeout") == 2
    assert value(found, "podgate_upstream_errors_total", kind="refused") == 1
    assert value(found, "podgate_upstream_errors_total", kind="reset") == 0
    assert value(found, "podgate_websockets_active") == 1
    assert value(found, "podgate_websockets_total") == 2
    assert value(found, "podgate_relayed_bytes_total", direction="to_upstream") == 1234
    assert value(found, "podgate_relayed_bytes_total", direction="to_client") == 98765
    assert value(found, "podgate_routes") == 42
    assert value(found, "podgate_cookie_rejections_total", reason="expired") == 1
    assert value(found, "podgate_cookie_rejections_total", reason="bad_signature") == 0


def test_invented_methods_share_one_series() -> None:
    found = samples(PodgateMetrics(busy_stats(), table_size=lambda: 0))
    assert (
        value(found, "podgate_requests_total", method="other", code="400", route_kind="none") == 2
    )
    assert not any(
        name == "podgate_requests_total" and ("method", "BREW") in labels for name, labels in found
    )


def test_duration_histogram_is_cumulative_with_sum_and_count() -> None:
    found = samples(PodgateMetrics(busy_stats(), table_size=lambda: 0))
    h = "podgate_request_duration_seconds"
    assert value(found, h + "_bucket", route_kind="user", le="0.0005") == 1
    assert value(found, h + "_bucket", route_kind="user", le="0.005") == 2
    assert value(found, h + "_bucket", route_kind="user", le="+Inf") == 2
    assert value(found, h + "_count", route_kind="user") == 2
    assert value(found, h + "_sum", route_kind="user") == pytest.approx(0.0034)
    assert value(found, h + "_bucket", route_kind="api", le="10.0") == 0  # 12 s is beyond
    assert value(found, h + "_bucket", route_kind="api", le="+Inf") == 1


def test_scrape_reads_counters_live_and_table_size_at_scrape_time() -> None:
    stats = EdgeStats()
    size = [0]
    metrics = PodgateMetrics(stats, table_size=lambda: size[0])
    assert value(samples(metrics), "podgate_routes") == 0
    size[0] = 7
    stats.request_done("GET", 302, "user", 0.01)
    found = samples(metrics)
    assert value(found, "podgate_routes") == 7
    assert value(found, "podgate_requests_total", method="GET", code="302", route_kind="user") == 1


def test_process_metrics_are_exported() -> None:
    found = samples(PodgateMetrics(EdgeStats(), table_size=lambda: 0))
    assert value(found, "process_resident_memory_bytes") > 0
    assert value(found, "process_open_fds") > 0


def test_two_instances_never_clash_or_touch_the_global_registry() -> None:
    a = PodgateMetrics(busy_stats(), table_size=lambda: 1)
    b = PodgateMetrics(EdgeStats(), table_size=lambda: 2)
    assert a.registry is not b.registry
    assert value(samples(a), "podgate_routes") == 1
    assert value(samples(b), "podgate_routes") == 2
    assert REGISTRY.get_sample_value("podgate_routes") is None


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt/prometheus)")
def test_promtool_accepts_the_exposition() -> None:
    text = PodgateMetrics(busy_stats(), table_size=lambda: 3).exposition()
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.strip() == b"" and result.stderr.strip() == b""  # no lint warnings
