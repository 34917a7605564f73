"""How numbers read in tables and reports: one rule, used by every table workbench prints.

Significant digits without exponents, thousands separators, and words (not ``nan``/``inf``)
for what was not measured.

Examples
--------
>>> [number(v) for v in (1612.4, 806.3, 12.345, 0.03978, 0.0, float("nan"))]
['1,612', '806', '12.3', '0.0398', '0', '–']
>>> megabytes(25_600), percent(0.376)
('0.0256', '38%')
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MISSING", "number", "megabytes", "percent", "is_missing"]

#: What a table shows where there is no value (not measured, or not applicable).
MISSING = "–"


def is_missing(value: Any) -> bool:
    """Whether ``value`` is None, NaN or not a number at all.

    Examples
    --------
    >>> is_missing(None), is_missing(float("nan")), is_missing(3), is_missing("x")
    (True, True, False, True)
    """
    if value is None or isinstance(value, bool):
        return value is None
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def number(value: Any, digits: int = 3) -> str:
    """Format a number with ``digits`` significant digits, no exponent, thousands separated.

    Integers of 1000 and more keep all their digits (``1,612``); infinities read ``∞``;
    missing values read :data:`MISSING`.

    Examples
    --------
    >>> number(3.98e-05), number(123456.7), number(-2.5), number(float("inf"))
    ('0.0000398', '123,457', '-2.50', '∞')
    """
    if is_missing(value):
        return MISSING
    v = float(value)
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(v)))
    if magnitude >= digits - 1:
        return f"{v:,.0f}"
    decimals = min(digits - 1 - magnitude, 9)
    return f"{v:,.{decimals}f}"


def megabytes(nbytes: Any, digits: int = 3) -> str:
    """Format a byte count in MB (10^6 bytes).

    Examples
    --------
    >>> megabytes(14_336_000), megabytes(0), megabytes(None)
    ('14.3', '0', '–')
    """
    return MISSING if is_missing(nbytes) else number(float(nbytes) / 1e6, digits)


def percent(share: Any) -> str:
    """Format a share in ``[0, 1]`` as a whole percentage.

    Examples
    --------
    >>> percent(0.004), percent(1.0)
    ('0%', '100%')
    """
    return MISSING if is_missing(share) else f"{100 * float(share):.0f}%"
