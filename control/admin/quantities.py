"""Kubernetes quantities ("250m", "1.5", "512Mi", "12345n") as numbers, and back as short words.

Pure functions for the admin panel's CPU and memory columns. A value that
is not a quantity is None (shown as "—"), never an error: what a pod spec
or the metrics API holds is not ours to reject.
"""

from __future__ import annotations

import re

_QUANTITY = re.compile(r"^([+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]{0,2})$")
_SUFFIX = {
    "": 1.0,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def parse_quantity(value: object) -> float | None:
    """The number a quantity stands for (cores for CPU, bytes for memory); None if not one."""
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if match is None or match.group(2) not in _SUFFIX:
        return None
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def format_cpu(cores: float | None) -> str:
    """ "250m" under one core, "1.5" above: as people write CPU requests."""
    if cores is None:
        return "—"
    if cores < 1:
        return f"{round(cores * 1000)}m"
    return f"{cores:.2f}".rstrip("0").rstrip(".")


def format_memory(size: float | None) -> str:
    """Bytes in binary units, three significant figures at most ("512 MiB", "1.5 GiB")."""
    if size is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            shown = f"{size:.0f}" if size >= 100 or unit == "B" else f"{size:.3g}"
            return f"{shown} {unit}"
        size /= 1024
    return "—"  # not reached: TiB catches the rest
