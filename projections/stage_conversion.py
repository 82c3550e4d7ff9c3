"""What stage conversion reads instead of grouping every visit of a pipeline by deal.

Conversion asks, per open stage, how many deals entered it and how many of those later entered
a later stage of the pipeline or were won — under the pipeline's order *now*, which a reorder
changes retroactively. Over a period that starts with the log (a dashboard's "all time", now or
as of an instant) a deal counts by its first visit of the stage, so that is what is kept:

- ``rm_stage_entries``: each deal's first visit of each open stage of a pipeline, and its first
  visit of it under each owner (an owner's conversion), with ``converted_at_us``: when the deal
  first went on from that visit to a later stage or won (:data:`FOREVER_US` if it has not);
- ``rm_stage_conversions``: those entries counted by organization, pipeline, stage, owner, month
  entered and month converted. A conversion sums a few thousand of these rows, and reads the
  entries themselves only in the month the period or ``as_of`` cuts;
- ``rm_stage_transitions``: the visits counted by from → to stage, owner and month entered, read
  the same way.

A batch that opens visits recomputes the entries of their deals from the deals' visits before and
after it, and moves the counts by the difference. A pipeline whose order changed (defined, a stage
added, removed or reordered) has its entries computed anew from its visits. A bulk load computes
all of it once at its end (:meth:`StageConversions.derive`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, timedelta
from functools import lru_cache
from itertools import groupby
from operator import attrgetter
from typing import Any, NamedTuple

from aggregates.pipeline import DEFAULT_PIPELINE, Stage, StageKind
from event_store.read_model_store import SqlCursor
from projections.keys import key_index
from projections.pipelines import PipelinesProjection, definition_of
from projections.row_projection import FOREVER_US
from projections.scope_keys import SCOPE_KEY, scope_key
from projections.units import MICROS_PER_DAY

ENTRIES_TABLE = "rm_stage_entries"
CONVERSIONS_TABLE = "rm_stage_conversions"
TRANSITIONS_TABLE = "rm_stage_transitions"
DERIVED_TABLES = (ENTRIES_TABLE, CONVERSIONS_TABLE, TRANSITIONS_TABLE)  # by :meth:`derive`
ENTRY_COLUMNS = (
    "id", "visit_no", "organization_id", "pipeline_id", "stage", "owner_key",
    "entered_at_us", "converted_at_us", "first_of_stage", "first_of_owner", SCOPE_KEY,
)  # fmt: skip
# Each count is kept per owner (``by_owner`` 1) and for all owners together (``by_owner`` 0,
# ``owner_key`` ''): a read without an owner sums a tenth of the rows.
CONVERSION_KEY = (
    "organization_id", "pipeline_id", "by_owner", "owner_key", "stage", "entered_month_us",
    "converted_month_us",
)  # fmt: skip
TRANSITION_KEY = (
    "organization_id", "pipeline_id", "by_owner", "owner_key", "from_stage", "stage",
    "entered_month_us",
)  # fmt: skip
WON_RANK = 10_000
LOST_RANK = -1
CONVERSION_LOCK_KEY = 7_261_015_002  # pg_advisory_xact_lock key: shared by batches, exclusive
# by a pipeline's recomputation, so none moves the counts under a stage order it did not read
VISIT_FACTS = (
    "id, visit_no, organization_id, pipeline_id, stage, from_stage, owner_id, entered_at_us"
)
CHUNK = 10_000

Ranks = Mapping[str, int]
"""A pipeline's stages by rank (:func:`stage_ranks`); a stage it does not have ranks lowest."""


def stage_ranks(stages: Iterable[Stage]) -> dict[str, int]:
    """Each stage's place: the open stages in pipeline order, the won stage after all of them,
    the lost stage below every stage (losing never counts as progress)."""
    ranks = {StageKind.WON: WON_RANK, StageKind.LOST: LOST_RANK}
    return {
        stage.id: position if stage.kind is StageKind.OPEN else ranks[stage.kind]
        for position, stage in enumerate(stages)
    }


class VisitFacts(NamedTuple):
    """What conversion needs of a stage visit (the ``VISIT_FACTS`` columns, in that order)."""

    id: str
    visit_no: int
    organization_id: str
    pipeline_id: str
    stage: str
    from_stage: str | None
    owner_id: str | None
    entered_at_us: int

    @property
    def owner_key(self) -> str:
        return self.owner_id or ""


class Entry(NamedTuple):
    """A row of ``rm_stage_entries`` (``ENTRY_COLUMNS``)."""

    id: str
    visit_no: int
    organization_id: str
    pipeline_id: str
    stage: str
    owner_key: str
    entered_at_us: int
    converted_at_us: int
    first_of_stage: int
    first_of_owner: int
    scope_key: int

    def counted(self) -> Iterator[tuple[tuple[Any, ...], int]]:
        """Its rows of ``rm_stage_conversions`` (``CONVERSION_KEY``) and what it adds to each:
        all owners' if it is the deal's first visit of the stage, its owner's if its first
        under that owner."""
        months = month_start_us(self.entered_at_us), month_start_us(self.converted_at_us)
        if self.first_of_stage:
            yield (self.organization_id, self.pipeline_id, 0, "", self.stage, *months), 1
        if self.first_of_owner:
            yield (
                (self.organization_id, self.pipeline_id, 1, self.owner_key, self.stage, *months),
                1,
            )


def entries_of(visits: Sequence[VisitFacts], ranks: Ranks) -> list[Entry]:
    """The entries of one deal's visits of one pipeline (by visit number): each first visit of
    an open stage, and each first under an owner, with when a later, higher stage followed."""
    entries = []
    visit_ranks = [ranks.get(visit.stage, LOST_RANK) for visit in visits]
    stages_seen: set[str] = set()
    owners_seen: set[tuple[str, str]] = set()
    for n, visit in enumerate(visits):
        rank = visit_ranks[n]
        if not 0 <= rank < WON_RANK:
            continue
        owner_key = visit.owner_key
        first_of_stage = visit.stage not in stages_seen
        first_of_owner = (visit.stage, owner_key) not in owners_seen
        if not (first_of_stage or first_of_owner):
            continue
        stages_seen.add(visit.stage)
        owners_seen.add((visit.stage, owner_key))
        converted_at = FOREVER_US
        for later in range(n + 1, len(visits)):
            if visit_ranks[later] > rank:
                converted_at = visits[later].entered_at_us
                break
        entry = Entry(
            visit.id, visit.visit_no, visit.organization_id, visit.pipeline_id, visit.stage,
            owner_key, visit.entered_at_us, converted_at,
            int(first_of_stage), int(first_of_owner),
            scope_key(visit.organization_id, visit.pipeline_id),
        )  # fmt: skip
        entries.append(entry)
    return entries


def transition_keys(visit: VisitFacts) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The rows of ``rm_stage_transitions`` (``TRANSITION_KEY``) a visit with a from stage
    counts in: all owners' and its owner's."""
    month = month_start_us(visit.entered_at_us)
    return (
        (visit.organization_id, visit.pipeline_id, 0, "", visit.from_stage, visit.stage, month),
        (
            visit.organization_id, visit.pipeline_id, 1, visit.owner_key,
            visit.from_stage, visit.stage, month,
        ),
    )  # fmt: skip


EPOCH_DATE = date(1970, 1, 1)


def month_start_us(instant_us: int) -> int:
    """The start of the UTC month of an instant (µs); :data:`FOREVER_US` stays itself."""
    if instant_us >= FOREVER_US:
        return FOREVER_US
    return _month_start_of_day(instant_us // MICROS_PER_DAY)


def month_start_sql(dialect: str, column: str) -> str:
    """SQL for :func:`month_start_us` of a column of instants (µs)."""
    if dialect == "postgres":
        start = (
            "CAST(date_part('epoch', date_trunc('month', TIMESTAMP '1970-01-01' "
            f"+ {column} * INTERVAL '1 microsecond')) AS BIGINT) * 1000000"
        )
    else:  # whole seconds, rounded down (also before 1970), then SQLite's own calendar
        seconds = f"(({column} - (({column} % 1000000) + 1000000) % 1000000) / 1000000)"
        start = (
            f"CAST(strftime('%s', {seconds}, 'unixepoch', 'start of month') AS INTEGER) * 1000000"
        )
    return f"(CASE WHEN {column} >= {FOREVER_US} THEN {FOREVER_US} ELSE {start} END)"


def next_month_start_us(instant_us: int) -> int:
    """The first month start at or after an instant; the far past and future stay themselves."""
    if instant_us >= FOREVER_US or instant_us <= -FOREVER_US:
        return instant_us
    start = month_start_us(instant_us)
    if start == instant_us:
        return start
    return month_start_us(start + 32 * MICROS_PER_DAY)


@lru_cache(maxsize=8192)
def _month_start_of_day(day: int) -> int:
    first = (EPOCH_DATE + timedelta(days=day)).replace(day=1)
    return (first - EPOCH_DATE).days * MICROS_PER_DAY


def add_counts(
    cursor: SqlCursor,
    table: str,
    key_columns: tuple[str, ...],
    column: str,
    deltas: Counter[tuple[Any, ...]],
) -> None:
    """Add the deltas to ``table``'s ``column`` by key (in key order, so that concurrent batches
    lock rows in the same order) and delete the rows they empty."""
    changed = sorted((key, n) for key, n in deltas.items() if n)
    if not changed:
        return
    cursor.insert_rows(
        table,
        (*key_columns, column),
        [(*key, n) for key, n in changed],
        f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE "
        f"SET {column} = {table}.{column} + excluded.{column}",
    )
    matches = " AND ".join(f"{c} = ?" for c in key_columns)
    cursor.executemany(
        f"DELETE FROM {table} WHERE {matches} AND {column} = 0",
        [key for key, n in changed if n < 0],
    )


class StageConversions:
    """Keeps the entries, conversion counts and transition counts of the stage visits."""

    def __init__(self, visits_table: str) -> None:
        self.visits_table = visits_table

    def schema(self) -> list[str]:
        return [
            f"CREATE TABLE IF NOT EXISTS {ENTRIES_TABLE} ("
            "id TEXT NOT NULL, visit_no INTEGER NOT NULL, organization_id TEXT NOT NULL, "
            "pipeline_id TEXT NOT NULL, stage TEXT NOT NULL, owner_key TEXT NOT NULL, "
            "entered_at_us BIGINT NOT NULL, converted_at_us BIGINT NOT NULL, "
            "first_of_stage INTEGER NOT NULL, first_of_owner INTEGER NOT NULL, "
            f"{SCOPE_KEY} BIGINT NOT NULL)",
            key_index(ENTRIES_TABLE, ("id", "visit_no")),  # built at a bulk load's end
            # The entries of the month a period or as_of cuts, by entering and by converting.
            f"CREATE INDEX IF NOT EXISTS {ENTRIES_TABLE}_by_scope_entering ON {ENTRIES_TABLE} "
            f"({SCOPE_KEY}, entered_at_us, stage, converted_at_us, first_of_stage, "
            "first_of_owner, owner_key, organization_id, pipeline_id)",
            f"CREATE INDEX IF NOT EXISTS {ENTRIES_TABLE}_by_scope_converting ON {ENTRIES_TABLE} "
            f"({SCOPE_KEY}, converted_at_us, stage, entered_at_us, first_of_stage, "
            "first_of_owner, owner_key, organization_id, pipeline_id)",
            f"CREATE TABLE IF NOT EXISTS {CONVERSIONS_TABLE} ("
            "organization_id TEXT NOT NULL, pipeline_id TEXT NOT NULL, by_owner INTEGER NOT NULL, "
            "owner_key TEXT NOT NULL, stage TEXT NOT NULL, entered_month_us BIGINT NOT NULL, "
            "converted_month_us BIGINT NOT NULL, deals BIGINT NOT NULL, "
            f"PRIMARY KEY ({', '.join(CONVERSION_KEY)}))",
            f"CREATE TABLE IF NOT EXISTS {TRANSITIONS_TABLE} ("
            "organization_id TEXT NOT NULL, pipeline_id TEXT NOT NULL, by_owner INTEGER NOT NULL, "
            "owner_key TEXT NOT NULL, from_stage TEXT NOT NULL, stage TEXT NOT NULL, "
            "entered_month_us BIGINT NOT NULL, moves BIGINT NOT NULL, "
            f"PRIMARY KEY ({', '.join(TRANSITION_KEY)}))",
        ]

    @staticmethod
    def lock(cursor: SqlCursor, *, exclusive: bool) -> None:
        """The deals' lock, before reading what other records decide (PostgreSQL; SQLite has
        one writer): batches of deal events share it; a pipeline's recomputation after its
        stages were reordered, and a move of re-categorized clients' closed deals
        (:func:`projections.closed_summary.move_client_categories`), hold it alone."""
        if cursor.dialect == "postgres":
            function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
            cursor.execute(f"SELECT {function}(?)", [CONVERSION_LOCK_KEY])

    def visits_opened(
        self,
        cursor: SqlCursor,
        earlier: Mapping[str, Sequence[VisitFacts]],
        opened: Sequence[VisitFacts],
    ) -> None:
        """A batch opened visits (``earlier``: their deals' visits before it): their deals'
        entries are computed again and the counts move by the difference."""
        if not opened:
            return
        ranks = ranks_by_pipeline(cursor, {visit.organization_id for visit in opened})
        now_of: dict[str, dict[int, VisitFacts]] = {}
        for visit in opened:
            deal = now_of.setdefault(visit.id, {v.visit_no: v for v in earlier.get(visit.id, ())})
            deal.setdefault(visit.visit_no, visit)
        gone: list[Entry] = []
        new: list[Entry] = []
        for deal_id, visits in now_of.items():
            before = set(entries_by_pipeline(earlier.get(deal_id, ()), ranks))
            after = set(entries_by_pipeline(sorted(visits.values()), ranks))
            gone += before - after
            new += after - before
        deals: Counter[tuple[Any, ...]] = Counter()
        for entry, sign in [(e, -1) for e in gone] + [(e, +1) for e in new]:
            for key, n in entry.counted():
                deals[key] += sign * n
        cursor.executemany(
            f"DELETE FROM {ENTRIES_TABLE} WHERE id = ? AND visit_no = ?",
            sorted((entry.id, entry.visit_no) for entry in gone),
        )
        insert_entries(cursor, sorted(new))
        add_counts(cursor, CONVERSIONS_TABLE, CONVERSION_KEY, "deals", deals)
        moves: Counter[tuple[Any, ...]] = Counter()
        for visit in opened:
            known = now_of[visit.id][visit.visit_no] is not visit  # a visit stored already
            if visit.from_stage is not None and not known:
                moves.update(transition_keys(visit))
        add_counts(cursor, TRANSITIONS_TABLE, TRANSITION_KEY, "moves", moves)

    def recompute(self, cursor: SqlCursor, organization_id: str, pipeline_id: str) -> None:
        """A pipeline's stage order changed: its entries and conversion counts anew."""
        scope = "organization_id = ? AND pipeline_id = ?"
        params = [organization_id, pipeline_id]
        cursor.execute(f"DELETE FROM {ENTRIES_TABLE} WHERE {scope}", params)
        cursor.execute(f"DELETE FROM {CONVERSIONS_TABLE} WHERE {scope}", params)
        ranks = ranks_by_pipeline(cursor, {organization_id})
        self._count_all(cursor, f"WHERE {scope}", params, ranks, transitions=False)

    def derive(self, cursor: SqlCursor, share: int = 0, shares: int = 1) -> None:
        """The entries and counts of a ``share`` of the deals (by id: see :func:`id_range`)
        from their stage visits, added to cleared tables: the end of a bulk load. Shares
        derived at the same time add to the same counts; their entries never meet."""
        cursor.execute(f"SELECT DISTINCT organization_id FROM {self.visits_table}")
        organizations = {row["organization_id"] for row in cursor.fetchall()}
        ranks = ranks_by_pipeline(cursor, organizations)
        where, params = id_range(share, shares)
        appending = cursor.appends_only
        cursor.appends_only = True  # the entries go straight into their table
        try:
            self._count_all(cursor, where, params, ranks, transitions=True)
        finally:
            cursor.appends_only = appending

    def _count_all(
        self,
        cursor: SqlCursor,
        where: str,
        params: list[Any],
        ranks: Mapping[tuple[str, str], Ranks],
        *,
        transitions: bool,
    ) -> None:
        """The entries of the visits ``where`` selects (of whole deals), then the counts of
        those entries — and of those visits' transitions — in SQL: grouped by the database,
        not one key at a time in Python (a bulk load's end counts ≈ 750,000 visits)."""
        entries: list[Entry] = []
        for visits in deals_visits(cursor, self.visits_table, where, params):
            entries += entries_by_pipeline(visits, ranks)
            if len(entries) >= CHUNK:
                insert_entries(cursor, entries)
                entries = []
        insert_entries(cursor, entries)
        count_conversions(cursor, where, params)
        if transitions:
            count_transitions(cursor, self.visits_table, where, params)


def count_conversions(cursor: SqlCursor, where: str, params: list[Any]) -> None:
    """Add the stored entries ``where`` selects to ``rm_stage_conversions``, as
    :meth:`Entry.counted` counts each: grouped once by owner, then summed over the owners."""
    entered, converted = (
        month_start_sql(cursor.dialect, column) for column in ("entered_at_us", "converted_at_us")
    )
    add_counted(
        cursor,
        CONVERSIONS_TABLE,
        CONVERSION_KEY,
        "deals",
        "WITH by_owner AS (SELECT organization_id, pipeline_id, owner_key, stage, "
        f"{entered} AS entered_month_us, {converted} AS converted_month_us, "
        "SUM(first_of_stage) AS firsts_of_stage, SUM(first_of_owner) AS firsts_of_owner "
        f"FROM {ENTRIES_TABLE} {where} GROUP BY organization_id, pipeline_id, owner_key, stage, "
        "entered_month_us, converted_month_us) "
        "SELECT organization_id, pipeline_id, 1, owner_key, stage, entered_month_us, "
        "converted_month_us, firsts_of_owner FROM by_owner WHERE firsts_of_owner > 0 UNION ALL "
        "SELECT organization_id, pipeline_id, 0, '', stage, entered_month_us, converted_month_us, "
        "SUM(firsts_of_stage) FROM by_owner GROUP BY organization_id, pipeline_id, stage, "
        "entered_month_us, converted_month_us HAVING SUM(firsts_of_stage) > 0",
        params,
    )


def count_transitions(cursor: SqlCursor, visits_table: str, where: str, params: list[Any]) -> None:
    """Add the visits ``where`` selects to ``rm_stage_transitions``, as
    :func:`transition_keys` counts each: grouped once by owner, then summed over the owners."""
    entered = month_start_sql(cursor.dialect, "entered_at_us")
    add_counted(
        cursor,
        TRANSITIONS_TABLE,
        TRANSITION_KEY,
        "moves",
        "WITH by_owner AS (SELECT organization_id, pipeline_id, "
        f"COALESCE(owner_id, '') AS owner_key, from_stage, stage, {entered} AS entered_month_us, "
        f"COUNT(*) AS moves FROM {visits_table} {also(where, 'from_stage IS NOT NULL')} "
        "GROUP BY organization_id, pipeline_id, owner_key, from_stage, stage, entered_month_us) "
        "SELECT organization_id, pipeline_id, 1, owner_key, from_stage, stage, entered_month_us, "
        "moves FROM by_owner UNION ALL "
        "SELECT organization_id, pipeline_id, 0, '', from_stage, stage, entered_month_us, "
        "SUM(moves) FROM by_owner "
        "GROUP BY organization_id, pipeline_id, from_stage, stage, entered_month_us",
        params,
    )


def add_counted(
    cursor: SqlCursor,
    table: str,
    key_columns: tuple[str, ...],
    column: str,
    counted: str,
    params: list[Any],
) -> None:
    """Add the rows of the ``counted`` query (key…, count; each key once) to ``table``'s
    ``column``, in key order: shares deriving side by side lock rows in the same order."""
    keys = ", ".join(key_columns)
    cursor.execute(
        f"INSERT INTO {table} ({keys}, {column}) SELECT * FROM ({counted}) AS counted "
        f"ORDER BY {', '.join(str(n) for n in range(1, len(key_columns) + 1))} "
        f"ON CONFLICT ({keys}) DO UPDATE SET {column} = {table}.{column} + excluded.{column}",
        params,
    )


def also(where: str, condition: str) -> str:
    """A ``WHERE`` clause (or nothing) with one more condition."""
    return f"{where} AND {condition}" if where else f"WHERE {condition}"


def id_range(share: int, shares: int) -> tuple[str, list[Any]]:
    """SQL (a ``WHERE`` clause or nothing) for the ``share``-th of ``shares`` ranges of
    record ids, split by their first hexadecimal digit (ids are UUIDs: evenly spread)."""
    if shares == 1:
        return "", []
    bounds = [""] + [format(n * 16 // shares, "x") for n in range(1, shares)] + [None]
    low, high = bounds[share], bounds[share + 1]
    if high is None:
        return "WHERE id >= ?", [low]
    return "WHERE id >= ? AND id < ?", [low, high]


def insert_entries(cursor: SqlCursor, entries: Sequence[Entry]) -> None:
    """New entries (none of them stored: their deal's or pipeline's were deleted first)."""
    cursor.insert_rows(
        ENTRIES_TABLE, ENTRY_COLUMNS, entries, "ON CONFLICT (id, visit_no) DO NOTHING"
    )


def deals_visits(
    cursor: SqlCursor, table: str, where: str, params: list[Any]
) -> Iterator[list[VisitFacts]]:
    """Each deal's stage visits (by number), deal after deal, streamed."""
    rows = cursor.stream(f"SELECT {VISIT_FACTS} FROM {table} {where} ORDER BY id, visit_no", params)
    for _, visits in groupby(map(VisitFacts._make, rows), key=attrgetter("id")):
        yield list(visits)


def entries_by_pipeline(
    visits: Iterable[VisitFacts], ranks: Mapping[tuple[str, str], Ranks]
) -> list[Entry]:
    """The entries of one deal's visits (by number), pipeline by pipeline."""
    of_pipeline: dict[tuple[str, str], list[VisitFacts]] = {}
    for visit in visits:
        of_pipeline.setdefault((visit.organization_id, visit.pipeline_id), []).append(visit)
    return [
        entry
        for key, pipeline_visits in of_pipeline.items()
        for entry in entries_of(pipeline_visits, ranks.get(key, {}))
    ]


def ranks_by_pipeline(
    cursor: SqlCursor, organization_ids: Iterable[str]
) -> dict[tuple[str, str], Ranks]:
    """The stage ranks of the organizations' pipelines as the read model has them now; the
    default pipeline's stages where an organization has not defined it (yet)."""
    model = PipelinesProjection()
    wanted = sorted(set(organization_ids))
    ranks: dict[tuple[str, str], Ranks] = {
        (organization_id, DEFAULT_PIPELINE.id): stage_ranks(DEFAULT_PIPELINE.stages)
        for organization_id in wanted
    }
    if not wanted:
        return ranks
    among, params = cursor.one_of("organization_id", wanted)
    cursor.execute(f"SELECT * FROM {model.table} WHERE {among}", params)
    for row in cursor.fetchall():
        definition = definition_of(model.decode(row))
        ranks[(row["organization_id"], definition.id)] = stage_ranks(definition.stages)
    return ranks
