"""Reading the versions valid at an instant from an index, sorted by how long each one lasted.

A version is valid at T when ``valid_from_us <= T < valid_to_us``. No index range holds just
those: one over valid_from holds every version begun by T, one over valid_to every version
ended after it — at a year back, ten times the versions valid then. But a version that lasted
at most L, valid at T, began after T − L. So an index led by the version's *span class* (the
first of a few limits its length fits under) and then by valid_from reads, for each class,
only the versions begun in ``(T − limit, T]``: about half of them or more are valid at T, as
each limit is at most four times the one below. The last class — longer than every limit,
current versions (valid_to forever) among them — is read from its start.

The class is an expression over the two bounds, so an index on it needs no column of its own
and moves with a version's ``valid_to_us`` when its successor arrives. Stage visits, from
entering a stage until leaving it, are read the same way.
"""

from __future__ import annotations

from typing import Any

from projections.row_projection import FOREVER_US
from projections.units import MICROS_PER_DAY

SPAN_LIMITS_US = tuple(
    round(days * MICROS_PER_DAY) for days in (0.25, 1, 3, 7, 15, 30, 60, 125, 365, 1461)
)


def span_class_sql(start: str = "valid_from_us", end: str = "valid_to_us") -> str:
    """The span class of an interval ``[start, end)``, in SQL: index and queries must spell
    it the same."""
    limits = " ".join(
        f"WHEN {end} - {start} <= {limit} THEN {number}"
        for number, limit in enumerate(SPAN_LIMITS_US)
    )
    return f"(CASE {limits} ELSE {len(SPAN_LIMITS_US)} END)"


SPAN_CLASS = span_class_sql()
"""The span class of a version."""


def any_span_class(start: str = "valid_from_us", end: str = "valid_to_us") -> str:
    """A condition every interval meets: its span class is one of them all. Beside a range of
    ``start``, it lets a read use an index led by the span class, then ``start`` (a range of
    each class), so no index led by ``start`` is needed."""
    classes = ", ".join(str(number) for number in range(len(SPAN_LIMITS_US) + 1))
    return f"{span_class_sql(start, end)} IN ({classes})"


def valid_at_by_span(
    as_of_us: int, start: str = "valid_from_us", end: str = "valid_to_us"
) -> list[tuple[str, list[Any]]]:
    """One condition per span class (with its parameters) that, beside ``start <= as_of AND
    end > as_of``, reads that class's range of the index: the intervals of the class that
    hold ``as_of`` are all in it. Their rows, joined by UNION ALL, are the intervals holding
    ``as_of``, each once."""
    span_class = span_class_sql(start, end)
    if as_of_us >= FOREVER_US - 1:  # now: only current intervals, all in the last class
        return [(f"{span_class} = {len(SPAN_LIMITS_US)}", [])]
    bounded = [
        (f"{span_class} = {number} AND {start} > ?", [as_of_us - limit])
        for number, limit in enumerate(SPAN_LIMITS_US)
    ]
    return [*bounded, (f"{span_class} = {len(SPAN_LIMITS_US)}", [])]


def union_by_span(
    statement: str, params: list[Any], spans: list[tuple[str, list[Any]]]
) -> tuple[str, list[Any]]:
    """``statement`` (a SELECT ending in its WHERE conditions) once per span condition of
    :func:`valid_at_by_span`, joined by UNION ALL, and the parameters of the whole."""
    return (
        " UNION ALL ".join(f"{statement} AND {span}" for span, _ in spans),
        [value for _, span_params in spans for value in (*params, *span_params)],
    )
