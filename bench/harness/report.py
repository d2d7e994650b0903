"""Turning repeated measurements into the one table: medians per figure, ratios to peers.

Pure formatting: no processes, no I/O beyond returning strings.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from bench.harness.workloads import FIGURES, Figure

TIMES = "\N{MULTIPLICATION SIGN}"  # a ratio reads "3.10" followed by this sign

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
    return f"{a / b:.2f}{TIMES}"


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


@dataclass(frozen=True)
class Target:
    """A target of issue 2, checked against one podgate peer's medians."""

    text: str
    key: str
    versus: str | None  # peer the figure is divided by; None: the figure itself
    limit: float
    at_least: bool  # True: figure (or ratio) >= limit passes; False: <= limit passes


TARGETS: tuple[Target, ...] = (
    Target("small requests/s >= 3x CHP", "small_rps", "chp", 3.0, True),
    Target("small p99 <= 1/2 of CHP", "small_p99_ms", "chp", 0.5, False),
    Target("1,000 conns: requests/s >= 3x CHP", "many_rps", "chp", 3.0, True),
    Target("1,000 conns: zero errors and timeouts", "many_errors", None, 0.0, False),
    Target("CPU per 100k requests <= 1/3 of CHP", "cpu_per_100k", "chp", 1 / 3, False),
    Target("256 MiB download >= 1 GB/s", "download_mbs", None, 1000.0, True),
    Target("download peak RSS < 100 MB", "download_rss_mb", None, 100.0, False),
    Target("upload peak RSS < 100 MB", "upload_rss_mb", None, 100.0, False),
    Target("WebSocket round-trips/s >= CHP", "ws_round_trips", "chp", 1.0, True),
    Target("memory per idle WebSocket <= 15 KiB", "ws_idle_kib", None, 15.0, False),
    Target("cookie route requests/s within 10% of proxy-only", "small_rps", "podgate", 0.9, True),
)


def _check(m: Measurements, peer: str, target: Target) -> str:
    value = m.median(peer, target.key)
    if target.versus is not None:
        base = m.median(target.versus, target.key)
        if value is None or not base:
            return "—"
        value /= base
    if value is None:
        return "—"
    ok = value >= target.limit if target.at_least else value <= target.limit
    shown = f"{value:.2f}{TIMES}" if target.versus else _fmt(value, target.key)
    return f"{shown} {'met' if ok else 'NOT met'}"


def targets_table(m: Measurements, peers: list[str]) -> str:
    """Issue 2's targets for each podgate peer measured in this run."""
    ours = [p for p in ("podgate", "podgate-cookie") if p in peers]
    if not ours:
        return ""
    lines = ["| target (issue 2) | " + " | ".join(ours) + " |", "| --- |" + " --- |" * len(ours)]
    for target in TARGETS:
        if target.versus == "podgate":  # the cookie route against the proxy-only route
            cells = ["", _check(m, "podgate-cookie", target)] if len(ours) == 2 else []
            if not cells:
                continue
        else:
            cells = [_check(m, p, target) for p in ours]
        if all(c in ("", "—") for c in cells):
            continue
        lines.append(f"| {target.text} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
