"""What time in stage reads instead of every visit of a stage.

Time in stage is the mean and median duration of the visits of each open stage entered in a
period, a visit not yet left at ``as_of`` counting up to it. Its median needs the durations in
order — every visit of a stage (160,000 of the first stage on the benchmark's book). A finished
visit's duration never changes, so the finished visits are kept counted:

- ``rm_stage_durations``: the finished visits by organization, pipeline, owner (and all owners
  together), stage, month entered, month left and duration bucket (:data:`MONTHLY_BUCKETS`,
  each a quarter longer than the one before), with the sum of their durations;
- ``rm_stage_durations_all_time``: the same without the months and in finer buckets
  (:data:`ALL_TIME_BUCKETS`), for a read of every visit there is (a dashboard's time in stage
  now).

A read sums the rows of the whole months entered in the period whose visits were left before the
month ``as_of`` falls in. It reads the durations of the other visits themselves, one array per
stage: those entered in a month the period cuts, and those still under way at the start of
``as_of``'s month (now: the visits not yet left, from an index of them). The sums give the count
and the mean. The median lies in the bucket where the running count crosses the middle: only
that bucket's kept durations are read, from the visits' index by duration.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from event_store.read_model_store import SqlCursor
from projections.keys import key_index
from projections.row_projection import FOREVER_US
from projections.scope_keys import SCOPE_KEY, in_scope
from projections.spans import SPAN_LIMITS_US, union_by_span, valid_at_by_span
from projections.stage_conversion import (
    VisitFacts,
    month_start_sql,
    month_start_us,
    next_month_start_us,
)
from projections.units import MICROS_PER_DAY

DURATIONS_TABLE = "rm_stage_durations"
ALL_TIME_TABLE = "rm_stage_durations_all_time"
DERIVED_TABLES = (DURATIONS_TABLE, ALL_TIME_TABLE)  # by :meth:`StageDurations.derive`
"""The same counts without the months: a read of every visit there is (the dashboard's
time in stage now) sums a few hundred rows, not thousands."""
DURATION_KEY = (
    "organization_id", "pipeline_id", "by_owner", "owner_key", "stage", "entered_month_us",
    "left_month_us", "bucket",
)  # fmt: skip
ALL_TIME_KEY = (*DURATION_KEY[:5], "bucket")
FINISHED = f"left_at_us < {FOREVER_US}"
OPEN_VISIT = f"left_at_us = {FOREVER_US}"
DURATION = "(left_at_us - entered_at_us)"
"""A finished visit's duration, as the index by duration spells it."""


MINUTE_US = 60_000_000
YEAR_US = 365 * MICROS_PER_DAY


@dataclass(frozen=True)
class Buckets:
    """Durations in buckets each ``growth`` times as long as the one before, from a minute
    to some decades: bucket ``n`` holds ``[edges[n], edges[n + 1])``; the first also any
    duration below (a visit entered after the instant it is read at), the last every longer
    one."""

    edges: tuple[int, ...]

    @classmethod
    def growing(cls, growth: float, up_to_us: int = 50 * YEAR_US) -> Buckets:
        edges = [0, MINUTE_US]
        while edges[-1] < up_to_us:
            edges.append(round(MINUTE_US * growth ** (len(edges) - 1)))
        return cls(tuple(edges))

    def of(self, duration_us: int) -> int:
        return max(bisect_right(self.edges, duration_us) - 1, 0)

    def bounds(self, bucket: int) -> tuple[int, int]:
        """The durations ``[low, high)`` of a bucket."""
        low = -FOREVER_US if bucket == 0 else self.edges[bucket]
        return low, FOREVER_US if bucket == len(self.edges) - 1 else self.edges[bucket + 1]

    def counts(self, ascending: Sequence[int]) -> Counter[int]:
        """How many of some durations (ascending) fall in each bucket."""
        counts: Counter[int] = Counter()
        if not ascending:
            return counts
        below = 0
        for bucket in range(self.of(ascending[0]), self.of(ascending[-1]) + 1):
            up_to = bisect_left(ascending, self.bounds(bucket)[1])
            if up_to > below:
                counts[bucket] = up_to - below
            below = up_to
        return counts

    def sql(self, dialect: str, duration: str) -> str:
        """SQL for :meth:`of` of an expression: PostgreSQL's ``width_bucket`` over the edges;
        on SQLite a binary search of nested CASEs."""
        if dialect == "postgres":
            return f"width_bucket({duration}, ARRAY[{', '.join(map(str, self.edges[1:]))}])"

        def within(first: int, last: int) -> str:  # the bucket among first..last
            if first == last:
                return str(first)
            middle = (first + last + 1) // 2
            return (
                f"CASE WHEN {duration} < {self.edges[middle]} "
                f"THEN {within(first, middle - 1)} ELSE {within(middle, last)} END"
            )

        return f"({within(0, len(self.edges) - 1)})"


MONTHLY_BUCKETS = Buckets.growing(1.25)
"""The buckets of ``rm_stage_durations``: a read sums (stage, month, month, bucket) rows."""
ALL_TIME_BUCKETS = Buckets.growing(1.04)
"""The finer buckets of ``rm_stage_durations_all_time``: few rows per stage whatever the
buckets, and the median's bucket holds a twentieth of the visits a coarse one does."""


class StageDurations:
    """Keeps the finished stage visits counted by month entered, month left and duration."""

    def __init__(self, visits_table: str) -> None:
        self.visits_table = visits_table

    def schema(self) -> list[str]:
        return [
            f"CREATE TABLE IF NOT EXISTS {DURATIONS_TABLE} ("
            "organization_id TEXT NOT NULL, pipeline_id TEXT NOT NULL, by_owner INTEGER NOT NULL, "
            "owner_key TEXT NOT NULL, stage TEXT NOT NULL, entered_month_us BIGINT NOT NULL, "
            "left_month_us BIGINT NOT NULL, bucket INTEGER NOT NULL, visits BIGINT NOT NULL, "
            "duration_us NUMERIC(38) NOT NULL)",
            key_index(DURATIONS_TABLE, DURATION_KEY),  # built at a bulk load's end
            f"CREATE TABLE IF NOT EXISTS {ALL_TIME_TABLE} ("
            "organization_id TEXT NOT NULL, pipeline_id TEXT NOT NULL, by_owner INTEGER NOT NULL, "
            "owner_key TEXT NOT NULL, stage TEXT NOT NULL, bucket INTEGER NOT NULL, "
            "visits BIGINT NOT NULL, duration_us NUMERIC(38) NOT NULL)",
            key_index(ALL_TIME_TABLE, ALL_TIME_KEY),
            # The finished visits of a stage by duration: the bucket holding the median.
            f"CREATE INDEX IF NOT EXISTS {self.visits_table}_by_scope_duration "
            f"ON {self.visits_table} ({SCOPE_KEY}, stage, {DURATION}, entered_at_us, left_at_us, "
            f"owner_id, organization_id, pipeline_id) WHERE {FINISHED}",
            # The visits not yet left, by stage: time in stage now.
            f"CREATE INDEX IF NOT EXISTS {self.visits_table}_open_by_scope "
            f"ON {self.visits_table} ({SCOPE_KEY}, stage, entered_at_us, owner_id, "
            f"organization_id, pipeline_id) WHERE {OPEN_VISIT}",
        ]

    @staticmethod
    def visits_finished(cursor: SqlCursor, finished: Sequence[tuple[VisitFacts, int]]) -> None:
        """Count visits a batch finished (each with the instant it was left)."""
        add_durations(cursor, *counted(finished))

    def read(
        self, cursor: SqlCursor, scope: DurationScope, stages: Sequence[str]
    ) -> dict[str, StageDurationFigures]:
        """See :func:`read_stage_durations`."""
        return read_stage_durations(cursor, self.visits_table, scope, stages)

    def derive(self, cursor: SqlCursor, share: int = 0, shares: int = 1) -> None:
        """Count every finished visit, into cleared counts (the end of a bulk load): in SQL,
        the months and buckets spelled as :func:`month_start_us` and :meth:`Buckets.of`
        compute them for a live batch. Each table is one statement over every visit; shares
        deriving side by side take a table each."""
        dialect = cursor.dialect
        entered, left = (month_start_sql(dialect, c) for c in ("entered_at_us", "left_at_us"))
        tables = (
            (
                DURATIONS_TABLE,
                MONTHLY_BUCKETS,
                f"{entered} AS entered_month_us, {left} AS left_month_us, ",
            ),
            (ALL_TIME_TABLE, ALL_TIME_BUCKETS, ""),
        )
        for table, buckets, months in tables[share::shares]:
            counted = "organization_id, pipeline_id, stage, " + (
                "entered_month_us, left_month_us, bucket" if months else "bucket"
            )
            cursor.execute(
                "WITH finished AS (SELECT organization_id, pipeline_id, stage, "
                f"COALESCE(owner_id, '') AS owner_key, {months}"
                f"{buckets.sql(dialect, DURATION)} AS bucket, {DURATION} AS duration_us "
                f"FROM {self.visits_table} WHERE {FINISHED}), by_owner AS ("
                f"SELECT owner_key, {counted}, COUNT(*) AS visits, SUM(duration_us) AS duration_us "
                f"FROM finished GROUP BY owner_key, {counted}) "
                f"INSERT INTO {table} (by_owner, owner_key, {counted}, visits, duration_us) "
                f"SELECT 1, owner_key, {counted}, visits, duration_us FROM by_owner UNION ALL "
                f"SELECT 0, '', {counted}, SUM(visits), SUM(duration_us) FROM by_owner "
                f"GROUP BY {counted}"
            )


Sums = dict[tuple[Any, ...], list[int]]
"""Rows of counts to add: (key…) → [visits, summed duration]."""


def counted(finished: Iterable[tuple[VisitFacts, int]]) -> tuple[Sums, Sums]:
    """The finished visits' rows of ``rm_stage_durations`` and of
    ``rm_stage_durations_all_time``, each visit counted for all owners and for its owner."""
    monthly: Sums = {}
    all_time: Sums = {}
    for visit, left_at_us in finished:
        duration = left_at_us - visit.entered_at_us
        entered_month, left_month = month_start_us(visit.entered_at_us), month_start_us(left_at_us)
        for by_owner, owner_key in ((0, ""), (1, visit.owner_key)):
            counts = (visit.organization_id, visit.pipeline_id, by_owner, owner_key, visit.stage)
            for sums, key in (
                (monthly, (*counts, entered_month, left_month, MONTHLY_BUCKETS.of(duration))),
                (all_time, (*counts, ALL_TIME_BUCKETS.of(duration))),
            ):
                found = sums.setdefault(key, [0, 0])
                found[0] += 1
                found[1] += duration
    return monthly, all_time


def add_durations(cursor: SqlCursor, monthly: Sums, all_time: Sums) -> None:
    """Add counted visits to ``rm_stage_durations`` and ``rm_stage_durations_all_time`` (in
    key order: concurrent batches lock rows in the same order)."""
    for table, key_columns, counts in (
        (DURATIONS_TABLE, DURATION_KEY, monthly),
        (ALL_TIME_TABLE, ALL_TIME_KEY, all_time),
    ):
        if counts:
            cursor.insert_rows(
                table,
                (*key_columns, "visits", "duration_us"),
                [(*key, *counts[key]) for key in sorted(counts)],
                f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE "
                f"SET visits = {table}.visits + excluded.visits, "
                f"duration_us = {table}.duration_us + excluded.duration_us",
            )


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DurationScope:
    """The visits whose durations a time in stage reads: of one pipeline (and owner), entered
    in ``[entered_from_us, entered_until_us)``; a visit not yet left at ``as_of_us`` ends at
    ``ends_open_at_us`` (``as_of``, or now)."""

    organization_id: str
    pipeline_id: str
    owner_id: str | None
    entered_from_us: int
    entered_until_us: int
    as_of_us: int
    ends_open_at_us: int


@dataclass(frozen=True)
class StageDurationFigures:
    visits: int
    mean_us: float | None
    median_us: float | None


def read_stage_durations(
    cursor: SqlCursor, visits_table: str, scope: DurationScope, stages: Sequence[str]
) -> dict[str, StageDurationFigures]:
    """Count, mean and median (µs) of each stage's visits in ``scope``, read in the caller's
    transaction (one snapshot: the median is found in two steps)."""
    parts = _Parts(cursor, visits_table, scope, stages)
    kept = parts.kept_counts()
    read = parts.read_durations()
    counted: dict[str, Counter[int]] = {}
    totals: dict[str, int] = {}
    for stage in stages:
        durations = read.get(stage, [])
        counted[stage] = kept.get(stage, Counter()) + parts.buckets.counts(durations)
        totals[stage] = parts.kept_totals.get(stage, 0) + sum(durations)
    visits = {stage: sum(counted[stage].values()) for stage in stages}
    middles = {stage: middle_of(visits[stage]) for stage in stages}
    where = {  # each middle rank: its bucket, and its rank among that bucket's durations
        (stage, rank): bucket_of_rank(counted[stage], rank)
        for stage, middle in middles.items()
        if middle is not None
        for rank in middle[:2]
    }
    wanted = {(stage, bucket) for (stage, _), (bucket, _) in where.items()}
    in_bucket = parts.kept_durations_in(
        sorted((stage, bucket) for stage, bucket in wanted if kept.get(stage, Counter())[bucket])
    )
    for stage, bucket in wanted:
        low, high = parts.buckets.bounds(bucket)
        durations = read.get(stage, [])
        from_read = durations[bisect_left(durations, low) : bisect_left(durations, high)]
        in_bucket[(stage, bucket)] = sorted([*in_bucket.get((stage, bucket), []), *from_read])
    figures = {}
    for stage, middle in middles.items():
        if middle is None:
            figures[stage] = StageDurationFigures(0, None, None)
            continue
        low_rank, high_rank, fraction = middle
        at_low, at_high = (
            in_bucket[(stage, where[(stage, rank)][0])][where[(stage, rank)][1]]
            for rank in (low_rank, high_rank)
        )
        figures[stage] = StageDurationFigures(
            visits[stage], totals[stage] / visits[stage], at_low + (at_high - at_low) * fraction
        )
    return figures


def middle_of(count: int) -> tuple[int, int, float] | None:
    """The ranks (0-based) whose durations the median lies between, and how far between
    (as ``percentile_cont(0.5)``); None for no visits."""
    if not count:
        return None
    position = (count - 1) / 2
    low = int(position)
    return low, min(low + 1, count - 1), position - low


def bucket_of_rank(by_bucket: Counter[int], rank: int) -> tuple[int, int]:
    """The bucket holding the duration of a rank (0-based, ascending), and its rank there."""
    before = 0
    for bucket in sorted(by_bucket):
        if rank < before + by_bucket[bucket]:
            return bucket, rank - before
        before += by_bucket[bucket]
    raise ValueError(f"rank {rank} of {before} durations")


class _Parts:
    """The statements of a read: the kept counts of whole months, and the visits themselves
    where months are cut — entered in a month the period cuts, or still under way at the
    start of ``as_of``'s month."""

    def __init__(
        self, cursor: SqlCursor, visits_table: str, scope: DurationScope, stages: Sequence[str]
    ) -> None:
        self.cursor = cursor
        self.visits_table = visits_table
        self.scope = scope
        self.stages = list(stages)
        start, until = scope.entered_from_us, scope.entered_until_us
        first_month, last_month = next_month_start_us(start), month_start_us(until)
        self.kept_months = (first_month, last_month) if first_month < last_month else None
        self.cut_ranges = (
            [(start, first_month), (last_month, until)] if self.kept_months else [(start, until)]
        )
        self.left_before = month_start_us(min(scope.as_of_us + 1, FOREVER_US))
        """Kept counts hold the visits left before this month start: within ``as_of``."""
        self.every_month = self.kept_months is not None and (
            first_month <= -FOREVER_US
            and last_month >= FOREVER_US
            and self.left_before >= FOREVER_US
        )
        """Every visit there is: the kept counts without months, in finer buckets."""
        self.buckets = ALL_TIME_BUCKETS if self.every_month else MONTHLY_BUCKETS
        self.kept_totals: dict[str, int] = {}
        self.owner_params = [] if scope.owner_id is None else [scope.owner_id]

    def kept_counts(self) -> dict[str, Counter[int]]:
        """Each stage's kept visits by bucket (their summed durations in ``kept_totals``)."""
        if self.kept_months is None:
            return {}
        scope = self.scope
        stages = ", ".join("?" * len(self.stages))
        months = (
            ""
            if self.every_month
            else "AND entered_month_us >= ? AND entered_month_us < ? AND left_month_us < ? "
        )
        # one row per stage (each bucket's count gathered beside it: the same rows in the same
        # order), not one per stage and bucket: a thousand rows cost Python milliseconds
        self.cursor.execute(
            f"SELECT stage, {self._gathered('bucket')} AS buckets, {self._gathered('n')} AS "
            "counts, SUM(total) AS total FROM (SELECT stage, bucket, "
            "CAST(SUM(visits) AS BIGINT) AS n, SUM(duration_us) AS total "
            f"FROM {ALL_TIME_TABLE if self.every_month else DURATIONS_TABLE} "
            "WHERE organization_id = ? AND pipeline_id = ? "
            f"AND by_owner = ? AND owner_key = ? AND stage IN ({stages}) {months}"
            "GROUP BY stage, bucket) kept GROUP BY stage",
            [
                scope.organization_id,
                scope.pipeline_id,
                int(scope.owner_id is not None),
                scope.owner_id or "",
                *self.stages,
                *([] if self.every_month else [*self.kept_months, self.left_before]),
            ],
            binary=True,
        )
        counts: dict[str, Counter[int]] = {}
        for row in self.cursor.fetchall():
            buckets, visits = self._numbers(row["buckets"]), self._numbers(row["counts"])
            counts[row["stage"]] = Counter(dict(zip(buckets, visits, strict=True)))
            self.kept_totals[row["stage"]] = int(row["total"])
        return counts

    def read_durations(self) -> dict[str, list[int]]:
        """The durations of each stage's visits the kept counts do not hold, ascending."""
        read, params = self._read_visits()
        if not read:
            return {}
        self.cursor.execute(
            f"SELECT stage, {self._gathered('d')} AS durations FROM ({read}) durations "
            "GROUP BY stage",
            params,
            binary=True,
        )
        return {row["stage"]: self._ascending(row["durations"]) for row in self.cursor.fetchall()}

    def kept_durations_in(
        self, wanted: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], list[int]]:
        """Every duration of the kept visits of each (stage, bucket) wanted, ascending, from
        the visits' index by duration."""
        if not wanted or self.kept_months is None:
            return {}
        scope = self.scope
        owner = "" if scope.owner_id is None else " AND owner_id = ?"
        pipeline, pipeline_params = in_scope(scope.organization_id, scope.pipeline_id)
        kept = (
            f"SELECT stage, CAST(? AS INTEGER) AS bucket, {DURATION} AS d FROM {self.visits_table} "
            f"WHERE {pipeline} AND stage = ? AND {FINISHED} "
            f"AND {DURATION} >= ? AND {DURATION} < ? AND entered_at_us >= ? "
            f"AND entered_at_us < ? AND left_at_us < ?{owner}"
        )
        params: list[Any] = []
        for stage, bucket in wanted:
            params += [bucket, *pipeline_params, stage]
            params += [*self.buckets.bounds(bucket), *self.kept_months, self.left_before]
            params += self.owner_params
        self.cursor.execute(
            f"SELECT stage, bucket, {self._gathered('d')} AS durations "
            f"FROM ({' UNION ALL '.join([kept] * len(wanted))}) kept GROUP BY stage, bucket",
            params,
            binary=True,
        )
        return {
            (row["stage"], int(row["bucket"])): self._ascending(row["durations"])
            for row in self.cursor.fetchall()
        }

    def _gathered(self, column: str) -> str:
        """An aggregate of a column's values into one value: an array on PostgreSQL (psycopg
        reads it in C), a list as text on SQLite — far fewer rows to make in Python. Left
        unordered: the indexes hand them over in order or in reverse, which Python's sort
        takes in one pass."""
        if self.cursor.dialect == "postgres":
            return f"array_agg({column})"
        return f"group_concat({column})"

    def _numbers(self, gathered: Any) -> list[int]:
        if self.cursor.dialect == "postgres":
            return list(gathered)
        return list(map(int, gathered.split(",")))

    def _ascending(self, gathered: Any) -> list[int]:
        return sorted(self._numbers(gathered))

    def _read_visits(self) -> tuple[str, list[Any]]:
        """A SELECT of (stage, d): the durations of the visits the kept counts do not hold."""
        scope = self.scope
        end = (
            f"(CASE WHEN left_at_us > {int(scope.as_of_us)} THEN {int(scope.ends_open_at_us)} "
            "ELSE left_at_us END)"
        )
        columns = f"SELECT stage, {end} - entered_at_us AS d FROM {self.visits_table}"
        pipeline, pipeline_params = in_scope(scope.organization_id, scope.pipeline_id)
        common = f"{pipeline} AND stage IN ({', '.join('?' * len(self.stages))})" + (
            "" if scope.owner_id is None else " AND owner_id = ?"
        )
        common_params = [*pipeline_params, *self.stages, *self.owner_params]
        parts: list[tuple[str, list[Any]]] = [
            (
                f"{columns} WHERE {common} AND entered_at_us >= ? AND entered_at_us < ?",
                [*common_params, since, until],
            )
            for since, until in self.cut_ranges
            if since < until
        ]
        if self.kept_months is not None:
            # the visits not yet left, from an index of them alone (their end named without
            # left_at_us, which that index lacks); as of an instant, all of them entered in
            # the kept months were under way at the start of its month
            parts.append(
                (
                    f"SELECT stage, {int(scope.ends_open_at_us)} - entered_at_us AS d "
                    f"FROM {self.visits_table} WHERE {common} AND {OPEN_VISIT} "
                    "AND entered_at_us >= ? AND entered_at_us < ?",
                    [*common_params, *self.kept_months],
                )
            )
        if self.kept_months is not None and self.left_before < FOREVER_US:
            # as of an instant, the finished visits under way at the start of its month: span
            # class by span class, but the last (longer than every limit) from the index by
            # duration, which names the stage; read by span class, that class's range holds
            # every visit not yet left, those of the pipeline's closing stages too
            instant = self.left_before - 1
            *bounded, _ = valid_at_by_span(instant, "entered_at_us", "left_at_us")
            longest: tuple[str, list[Any]] = (
                f"{FINISHED} AND {DURATION} > {SPAN_LIMITS_US[-1]}",
                [],
            )
            parts.append(
                union_by_span(
                    f"{columns} WHERE {common} AND entered_at_us >= ? AND entered_at_us < ? "
                    "AND entered_at_us <= ? AND left_at_us > ?",
                    [*common_params, *self.kept_months, instant, instant],
                    [*bounded, longest],
                )
            )
        return (
            " UNION ALL ".join(statement for statement, _ in parts),
            [value for _, params in parts for value in params],
        )
