"""The HTTPS table: medians per figure and peer, podgate's ratios, and issue 17's goals.

Pure formatting, as bench/harness/report.py for the HTTP table.
"""

from __future__ import annotations

from bench.harness.report import TIMES, Measurements
from bench.harness.tls_workloads import TLS_FIGURES

RATIOS = (("podgate", "chp", "podgate ÷ CHP"), ("podgate", "nginx", "podgate ÷ nginx"))

# (text, key, versus peer or None, limit, at least?)
GOALS = (
    ("keep-alive requests/s >= 2.5x CHP", "tls_rps", "chp", 2.5, True),
    ("new TLS connections/s >= 2x CHP", "handshakes", "chp", 2.0, True),
    ("256 MiB download >= 500 MB/s", "tls_download_mbs", None, 500.0, True),
    # Flat: what the download adds to the idle process, far below the 256 MiB body.
    ("download RSS growth < 32 MB (flat)", "tls_download_growth_mb", None, 32.0, False),
)


def _fmt(value: float | None, key: str) -> str:
    if value is None:
        return "—"
    if key.endswith("_ms") or key.endswith("per_100k"):
        return f"{value:.2f}"
    return f"{value:,.0f}"


def _ratio(m: Measurements, num: str, den: str, key: str) -> str:
    a, b = m.median(num, key), m.median(den, key)
    return f"{a / b:.2f}{TIMES}" if a is not None and b else "—"


def tls_table(m: Measurements, peers: list[str]) -> str:
    ratios = [r for r in RATIOS if r[0] in peers and r[1] in peers]
    head = ["figure (HTTPS)", *peers, *(title for _, _, title in ratios)]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for fig in TLS_FIGURES:
        cells = [_fmt(m.median(p, fig.key), fig.key) for p in peers]
        if all(c == "—" for c in cells):
            continue
        cells += [_ratio(m, num, den, fig.key) for num, den, _ in ratios]
        label = f"{fig.label} {'↑' if fig.higher_is_better else '↓'}"
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines)


def goals_table(m: Measurements) -> str:
    lines = ["| goal (issue 17) | podgate |", "| --- | --- |"]
    for text, key, versus, limit, at_least in GOALS:
        value = m.median("podgate", key)
        if versus is not None:
            base = m.median(versus, key)
            value = value / base if value is not None and base else None
        if value is None:
            cell = "—"
        else:
            ok = value >= limit if at_least else value <= limit
            shown = f"{value:.2f}{TIMES}" if versus else _fmt(value, key)
            cell = f"{shown} {'met' if ok else 'NOT met'}"
        lines.append(f"| {text} | {cell} |")
    return "\n".join(lines)
