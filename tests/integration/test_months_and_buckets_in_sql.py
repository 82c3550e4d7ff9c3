"""The month an instant falls in and the bucket a duration falls in, computed by the database
(the end of a bulk load counts stage visits in SQL) and in Python (a live batch counts them
itself): the two must agree, or a live batch would move counts the bulk load never made."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from crm.settings import Settings
from event_store.read_model_store import ReadModelStore
from projections.row_projection import FOREVER_US
from projections.stage_conversion import month_start_sql, month_start_us
from projections.stage_durations import ALL_TIME_BUCKETS, MONTHLY_BUCKETS, Buckets
from projections.units import micros


def instants_around_month_starts() -> list[int]:
    """Each month start of 1968–2031 and a microsecond either side; random instants between
    1900 and 2100; and the far future an open visit's end stands for."""
    starts = [
        micros(datetime(year, month, 1, tzinfo=UTC))
        for year in range(1968, 2032)
        for month in range(1, 13)
    ]
    low, high = micros(datetime(1900, 1, 1, tzinfo=UTC)), micros(datetime(2100, 1, 1, tzinfo=UTC))
    drawn = random.Random(20261205)
    near = [start + offset for start in starts for offset in (-1, 0, 1)]
    return [*near, *(drawn.randrange(low, high) for _ in range(2_000)), FOREVER_US]


def durations_around_bucket_edges(buckets: Buckets) -> list[int]:
    """Each bucket edge and a microsecond either side; random durations up to the last edge;
    negative ones (a visit entered after the instant it is read at)."""
    drawn = random.Random(20261205)
    near = [edge + offset for edge in buckets.edges for offset in (-1, 0, 1)]
    return [*near, *(drawn.randrange(0, buckets.edges[-1]) for _ in range(1_000)), -5]


CASES: dict[str, tuple[Callable[[str, str], str], Callable[[int], int], list[int]]] = {
    "month": (month_start_sql, month_start_us, instants_around_month_starts()),
    **{
        f"{name} bucket": (buckets.sql, buckets.of, durations_around_bucket_edges(buckets))
        for name, buckets in (("monthly", MONTHLY_BUCKETS), ("all-time", ALL_TIME_BUCKETS))
    },
}


@pytest.mark.parametrize("case", list(CASES))
def test_given_values_around_every_boundary_when_the_database_computes_them_then_python_agrees(
    settings: Settings, case: str
) -> None:
    in_sql, in_python, values = CASES[case]
    store = ReadModelStore(settings.location())
    try:
        with store.transaction(commit=False) as cursor:
            rows = ", ".join(["(CAST(? AS BIGINT))"] * len(values))
            cursor.execute(
                f"WITH given (v) AS (VALUES {rows}) "
                f"SELECT v, {in_sql(cursor.dialect, 'v')} AS computed FROM given",
                values,
            )
            in_database = {int(row["v"]): int(row["computed"]) for row in cursor.fetchall()}
    finally:
        store.close()

    assert in_database == {value: in_python(value) for value in values}
