"""Turning repeated measurements into the one table: medians per figure, ratios to peers.

Pure formatting: no processes, no I/O beyond returning strings.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from bench.harness.workloads import FIGURES, Figure

# (numerator peer, denominator peer, column title)
RATIOS: tuple[tuple[str, str, str], ...] = (
    ("podgate", "chp", "podgate ÷ CHP"),
    ("podgate", "nginx", "podgate ÷ nginx"),
    ("podgate-cookie", "chp", "cookie ÷ CHP"),
    ("podgate-cookie", "nginx", "cookie ÷ nginx"),
    ("podgate-cookie", "podgate", "cookie ÷ podgate"),
)


@dataclass
class Measurements:
    """Every sample of every figure, per peer, plus what went wrong along the way."""

    samples: defaultdict[str, defaultdict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    failures: list[str] = field(default_factory=list)

    def add(self, peer: str, figures: dict[str, float | None]) -> None:
        for key, value in figures.items():
            if value is not None:
                self.samples[peer][key].append(float(value))

    def median(self, peer: str, key: str) -> float | None:
        values = self.samples.get(peer, {}).get(key)
        return statistics.median(values) if values else None


def _fmt(value: float | None, key: str) -> str:
    if value is None:
        return "—"
    if key.endswith("_ms"):
        return f"{value:.2f}"
    if key.endswith("_kib") or key == "cpu_per_100k":
        return f"{value:.1f}"
    if key.endswith("_rss_mb"):
        return f"{value:.0f}"
    return f"{value:,.0f}"


def _ratio(m: Measurements, num: str, den: str, key: str) -> str:
    a, b = m.median(num, key), m.median(den, key)
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"  # noqa: RUF001 - the multiplication sign reads as a ratio


def _label(fig: Figure, idle_count: int) -> str:
    arrow = "↑" if fig.higher_is_better else "↓"
    return f"{fig.label.replace('of N', f'of {idle_count:,}')} {arrow}"


def markdown_table(m: Measurements, peers: list[str], *, idle_count: int) -> str:
    """One row per figure with any value; a column per peer, then podgate's ratios."""
    ratios = [r for r in RATIOS if r[0] in peers and r[1] in peers]
    head = ["figure", *peers, *(title for _, _, title in ratios)]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for fig in FIGURES:
        cells = [_fmt(m.median(p, fig.key), fig.key) for p in peers]
        if all(c == "—" for c in cells):
            continue
        cells += [_ratio(m, num, den, fig.key) for num, den, _ in ratios]
        lines.append("| " + " | ".join([_label(fig, idle_count), *cells]) + " |")
    return "\n".join(lines)
