"""Kubernetes resource quantities ("500m", "1Gi", "2", "1e3") as plain integers.

Pure parsing and formatting only; never touches processes or the store.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1)}
_DECIMAL.update({"k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9)})
_DECIMAL.update({"T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18)})


class InvalidQuantity(ValueError):
    """A resource quantity that Kubernetes would reject."""


def parse_quantity(value: str | int | float) -> Decimal:
    """The quantity as an exact decimal in base units (cores, bytes)."""
    if isinstance(value, int | float):
        return Decimal(str(value))
    text = value.strip()
    for suffix, factor in _BINARY.items():
        if text.endswith(suffix):
            return _number(text[: -len(suffix)], value) * factor
    if text[-1:] in _DECIMAL and text[-1:] != "":
        return _number(text[:-1], value) * _DECIMAL[text[-1]]
    return _number(text, value)


def _number(text: str, original: object) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation as e:
        raise InvalidQuantity(f"quantities must match the regular expression: {original!r}") from e
    if not number.is_finite() or number < 0:
        raise InvalidQuantity(f"invalid quantity {original!r}")
    return number


def cpu_millicores(value: str | int | float) -> int:
    """CPU in millicores, rounded up as Kubernetes does ("0.1" -> 100, "1" -> 1000)."""
    return int((parse_quantity(value) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def memory_bytes(value: str | int | float) -> int:
    """Memory in bytes, rounded up ("1Gi" -> 1073741824, "1k" -> 1000)."""
    return int(parse_quantity(value).to_integral_value(rounding="ROUND_CEILING"))


def format_cpu(millicores: int) -> str:
    """Millicores as metrics-server reports them ("12m")."""
    return f"{max(0, millicores)}m"


def format_memory(nbytes: int) -> str:
    """Bytes as metrics-server reports them, in Ki ("34816Ki")."""
    return f"{max(0, nbytes) // 1024}Ki"
