"""resource.Quantity as the API server writes it back: the canonical form of the value (`0.5` -> `500m`,
`1024Mi` -> `1Gi`), in the format its suffix chose (decimal SI, binary SI or exponent)."""

from __future__ import annotations

import re
from decimal import ROUND_UP, Decimal

from kubernetes.utils.quantity import parse_quantity

DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_BINARY = re.compile(r".*[KMGTPE]i$")
_EXPONENT = re.compile(r".*\d[eE][+-]?\d+$")
MILLI = Decimal("0.001")


def canonical(value: object, round_milli: bool = False) -> object:
    """The string the server returns for a quantity (ResourceLists are first rounded up to milli units);
    anything it cannot parse is returned unchanged for validation to refuse."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    text = str(value).strip()
    try:
        amount = Decimal(parse_quantity(text))
    except ValueError:
        return value
    if round_milli and amount != amount.quantize(MILLI, rounding=ROUND_UP):
        amount = amount.quantize(MILLI, rounding=ROUND_UP)
    if _BINARY.match(text) and abs(amount) >= 1024 and amount == amount.to_integral_value():
        return _binary(int(amount))
    return _decimal(amount, exponent_form=bool(_EXPONENT.match(text)))


def _binary(n: int) -> str:
    power = 0
    while n % 1024 == 0 and power < len(BINARY_SUFFIXES) - 1:
        n //= 1024
        power += 1
    return f"{n}{BINARY_SUFFIXES[power]}"


def _decimal(amount: Decimal, exponent_form: bool) -> str:
    if amount == 0:
        return "0"
    sign, digits, exp = amount.normalize().as_tuple()
    assert isinstance(exp, int)  # a finite amount
    mantissa = int("".join(map(str, digits))) * (-1 if sign else 1)
    drop = exp % 3  # lower the exponent to a multiple of three
    mantissa, exp = mantissa * 10 ** drop, exp - drop
    if exp == 0:
        return str(mantissa)
    if not exponent_form and exp in DECIMAL_SUFFIXES:
        return f"{mantissa}{DECIMAL_SUFFIXES[exp]}"
    return f"{mantissa}e{exp}"
