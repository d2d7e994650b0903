"""Kubernetes resource quantities ("500m", "1Gi", "2", "1e3") as exact decimals.

The one grammar both the API server's validation and the kubelet's
arithmetic use, so nothing the API accepted can fail to parse later. Pure
parsing only; never touches processes or the store.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# The pattern the real API server names in its error message.
QUANTITY_PATTERN = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1)}
_DECIMAL.update({"k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9)})
_DECIMAL.update({"T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18)})

# Stricter than QUANTITY_PATTERN (one suffix, one decimal point), as the
# server's parser is behind that pattern.
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)


class InvalidQuantity(ValueError):
    """A resource quantity that Kubernetes would reject."""


def parse_quantity(value: object) -> Decimal:
    """The quantity as an exact decimal in base units (cores, bytes); may be negative."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidQuantity(f"quantities must match the regular expression '{QUANTITY_PATTERN}'")
    text = repr(value) if isinstance(value, float) else str(value)
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise InvalidQuantity(f"quantities must match the regular expression '{QUANTITY_PATTERN}'")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as e:  # the pattern admits only decimals; kept as a guard
        raise InvalidQuantity(f"invalid quantity {value!r}") from e
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number.scaleb(int(suffix[1:]))
