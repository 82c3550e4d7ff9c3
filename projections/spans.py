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
and moves with a version's ``valid_to_us`` when its successor arrives.
"""

from __future__ import annotations

from typing import Any

from projections.units import MICROS_PER_DAY

SPAN_LIMITS_US = tuple(
    round(days * MICROS_PER_DAY) for days in (0.25, 1, 3, 7, 15, 30, 60, 125, 365, 1461)
)

SPAN_CLASS = (
    "(CASE "
    + " ".join(
        f"WHEN valid_to_us - valid_from_us <= {limit} THEN {number}"
        for number, limit in enumerate(SPAN_LIMITS_US)
    )
    + f" ELSE {len(SPAN_LIMITS_US)} END)"
)
"""The span class of a version, in SQL: index and queries must spell it the same."""


def valid_at_by_span(as_of_us: int) -> list[tuple[str, list[Any]]]:
    """One condition per span class (with its parameters) that, beside ``valid_from_us <=
    as_of AND valid_to_us > as_of``, reads that class's range of the index: the versions of
    the class valid at ``as_of`` are all in it. Their rows, joined by UNION ALL, are the
    versions valid at ``as_of``, each once."""
    bounded = [
        (f"{SPAN_CLASS} = {number} AND valid_from_us > ?", [as_of_us - limit])
        for number, limit in enumerate(SPAN_LIMITS_US)
    ]
    return [*bounded, (f"{SPAN_CLASS} = {len(SPAN_LIMITS_US)}", [])]
