"""Compare an analytics answer (JSON) with the oracle's, field by field, naming the first miss.

Money is exact: a :class:`~decimal.Decimal` expectation equals the answer's decimal string. A
:class:`~fractions.Fraction` (a mean of money) is reported to four places, so the answer is
within half a unit of the fourth. Floats (ratios, days) agree within a tiny tolerance, or
within ``days_tolerance`` when the figure runs up to "now". Instants compare as instants. Only
the fields the oracle computes are compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from tests.analytics.oracle import Near

HALF_A_UNIT = Fraction(1, 20_000)


def assert_matches(actual: Any, expected: Any, *, days_tolerance: float = 1e-9) -> None:
    problem = mismatch(actual, expected, "", days_tolerance)
    assert problem is None, problem


def mismatch(actual: Any, expected: Any, path: str, tolerance: float) -> str | None:
    """Where and how ``actual`` differs from ``expected``; None when it does not."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return f"{path or 'answer'}: expected an object, got {actual!r}"
        for key, value in expected.items():
            if key not in actual:
                return f"{path}.{key}: missing (expected {value!r})"
            found = mismatch(actual[key], value, f"{path}.{key}", tolerance)
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{path}: expected a list, got {actual!r}"
        for n, (got, want) in enumerate(zip(actual, expected, strict=False)):
            found = mismatch(got, want, f"{path}[{n}]", tolerance)
            if found:
                return found
        if len(actual) != len(expected):
            extra = actual[len(expected) :] or expected[len(actual) :]
            return (
                f"{path}: {len(actual)} items, expected {len(expected)}; first extra {extra[0]!r}"
            )
        return None
    return scalar_mismatch(actual, expected, path, tolerance)


def scalar_mismatch(actual: Any, expected: Any, path: str, tolerance: float) -> str | None:
    if expected is None or isinstance(expected, (bool, str)) or type(expected) is int:
        same = actual == expected and type(actual) is type(expected)
        return None if same else f"{path}: {actual!r}, expected {expected!r}"
    if isinstance(expected, Decimal):
        same = isinstance(actual, (str, int)) and Decimal(actual) == expected
        return None if same else f"{path}: {actual!r}, expected exactly {expected}"
    if isinstance(expected, Near):
        near = isinstance(actual, str) and abs(Fraction(Decimal(actual)) - expected.value) <= (
            expected.within
        )
        return None if near else f"{path}: {actual!r}, expected {float(expected.value):.6f}"
    if isinstance(expected, Fraction):
        near = isinstance(actual, str) and abs(Fraction(Decimal(actual)) - expected) <= HALF_A_UNIT
        return None if near else f"{path}: {actual!r}, expected {float(expected):.6f} to 4 places"
    if isinstance(expected, float):
        near = isinstance(actual, (int, float)) and math.isclose(
            actual, expected, rel_tol=1e-9, abs_tol=max(tolerance, 1e-9)
        )
        return None if near else f"{path}: {actual!r}, expected {expected!r}"
    if isinstance(expected, datetime):
        same = isinstance(actual, str) and datetime.fromisoformat(actual) == expected
        return None if same else f"{path}: {actual!r}, expected {expected.isoformat()}"
    raise TypeError(f"{path}: cannot compare with {expected!r}")
