"""Resource quantities in the kubelet's units: millicores and bytes, rounded up.

Pure arithmetic over kubesim.quantities' parser; never touches processes or
the store.
"""

from __future__ import annotations

from decimal import Decimal

from kubesim.quantities import InvalidQuantity, parse_quantity

__all__ = ["InvalidQuantity", "cpu_millicores", "format_cpu", "format_memory", "memory_bytes"]


def _amount(value: object) -> Decimal:
    quantity = parse_quantity(value)
    if quantity < 0:
        raise InvalidQuantity(f"invalid quantity {value!r}: must be greater than or equal to 0")
    return quantity


def cpu_millicores(value: str | int | float) -> int:
    """CPU in millicores, rounded up as Kubernetes does ("0.1" -> 100, "1" -> 1000)."""
    return int((_amount(value) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def memory_bytes(value: str | int | float) -> int:
    """Memory in bytes, rounded up ("1Gi" -> 1073741824, "1k" -> 1000)."""
    return int(_amount(value).to_integral_value(rounding="ROUND_CEILING"))


def format_cpu(millicores: int) -> str:
    """Millicores as metrics-server reports them ("12m")."""
    return f"{max(0, millicores)}m"


def format_memory(nbytes: int) -> str:
    """Bytes as metrics-server reports them, in Ki ("34816Ki")."""
    return f"{max(0, nbytes) // 1024}Ki"
