"""Route table lookup time against table size (protocol item 6, second half).

Imports routes.RouteTable directly (no server, no sockets) and times
longest_match on paths of existing users, so the figure is the table's
own cost per request. It never touches the network.
"""

from __future__ import annotations

import random
import statistics
import time

from routes import RouteSource, RouteTable, normalise_path

SIZES: tuple[int, ...] = (1, 10, 100, 1_000, 10_000, 100_000)


def build_table(size: int) -> RouteTable:
    table = RouteTable()
    for i in range(size):
        table.add(
            f"/user/u{i}", f"http://10.0.{i // 250 % 250}.{i % 250 + 1}:8888",
            source=RouteSource.PODS, user=f"u{i}",
        )  # fmt: skip
    return table


def lookup_ns(size: int, *, lookups: int = 200_000, repeats: int = 5) -> dict[str, float]:
    """Median nanoseconds per longest_match (hit and miss), and per normalise + match."""
    table = build_table(size)
    rng = random.Random(size)
    hits = [f"/user/u{rng.randrange(size)}/lab/tree/work/notes.ipynb" for _ in range(1000)]
    misses = [f"/user/nobody{i}/api/kernels" for i in range(1000)]
    rounds = max(1, lookups // 1000)

    def timed(paths: list[str], normalise: bool) -> float:
        samples = []
        match = table.longest_match
        for _ in range(repeats):
            start = time.perf_counter_ns()
            for _ in range(rounds):
                if normalise:
                    for p in paths:
                        match(normalise_path(p))
                else:
                    for p in paths:
                        match(p)
            samples.append((time.perf_counter_ns() - start) / (rounds * len(paths)))
        return statistics.median(samples)

    assert table.longest_match(hits[0]) is not None
    return {
        "hit_ns": timed(hits, False),
        "miss_ns": timed(misses, False),
        "normalise_and_hit_ns": timed(hits, True),
    }


def markdown(results: dict[int, dict[str, float]]) -> str:
    lines = [
        "| routes in table | longest_match, hit (ns) | miss (ns) | normalise + match (ns) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for size, r in results.items():
        lines.append(
            f"| {size:,} | {r['hit_ns']:,.0f} | {r['miss_ns']:,.0f} "
            f"| {r['normalise_and_hit_ns']:,.0f} |"
        )
    return "\n".join(lines)
