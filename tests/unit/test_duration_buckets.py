"""Time in stage finds its median by counting durations per bucket: every duration must fall
in exactly one bucket, and counting a sorted list by bucket must agree with bucketing each."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from projections.stage_durations import (
    ALL_TIME_BUCKETS,
    MONTHLY_BUCKETS,
    Buckets,
    bucket_of_rank,
    middle_of,
)

BUCKETS = {"monthly": MONTHLY_BUCKETS, "all time": ALL_TIME_BUCKETS}
each_kind_of_buckets = pytest.mark.parametrize("buckets", BUCKETS.values(), ids=list(BUCKETS))


def durations_around_every_edge(buckets: Buckets) -> list[int]:
    """Each bucket edge and a microsecond either side; random durations up to the last edge;
    negative ones (a visit entered after the instant it is read at)."""
    near = [edge + offset for edge in buckets.edges for offset in (-1, 0, 1)]
    drawn = random.Random(20261205)
    longest = buckets.edges[-1]
    return [*near, *(drawn.randrange(0, longest) for _ in range(1_000)), -5, -(10**12)]


@each_kind_of_buckets
def test_given_any_duration_when_bucketed_then_it_lies_within_its_buckets_bounds(
    buckets: Buckets,
) -> None:
    for duration in durations_around_every_edge(buckets):
        low, high = buckets.bounds(buckets.of(duration))
        assert low <= duration < high


@each_kind_of_buckets
def test_given_sorted_durations_when_counted_by_bucket_then_each_is_counted_in_its_own(
    buckets: Buckets,
) -> None:
    durations = sorted(durations_around_every_edge(buckets))

    assert buckets.counts(durations) == Counter(map(buckets.of, durations))


@each_kind_of_buckets
def test_given_bucket_counts_when_a_rank_is_looked_for_then_its_bucket_and_place_are_found(
    buckets: Buckets,
) -> None:
    durations = sorted(durations_around_every_edge(buckets))
    counts = buckets.counts(durations)

    for rank in (0, 1, 500, len(durations) // 2, len(durations) - 1):
        bucket, place = bucket_of_rank(counts, rank)
        low, high = buckets.bounds(bucket)
        in_bucket = [d for d in durations if low <= d < high]
        assert in_bucket[place] == durations[rank]


def test_given_a_count_when_its_middle_is_taken_then_it_is_percentile_conts() -> None:
    assert middle_of(0) is None
    assert middle_of(1) == (0, 0, 0.0)
    assert middle_of(4) == (1, 2, 0.5)
    assert middle_of(5) == (2, 3, 0.0)
