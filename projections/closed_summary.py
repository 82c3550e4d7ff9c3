"""The closed deals summed by close month: what the win/loss breakdowns and the salespeople
read for the deals as they stand now.

Read from the deals' rows, each of those analytics groups every closed deal of the period:
55,163 on the analytics bench's book, 31–36 ms in-process. Here each closed deal adds to one
row per breakdown (owner, source, lost reason, competitor), keyed by its pipeline, outcome,
owner, close month and currency: 3,672 to 11,824 rows per breakdown on that book, bounded by
those combinations rather than by the number of deals.

A closed deal converts to the base currency at the rate effective on its close *day*, and
rates are reference data read when the figure is asked for (one recorded later may start
earlier). A month's sum therefore stands for its deals only where one rate holds the whole
month: in the base currency, or in a currency with a rate in force on the month's first day
and none starting later in the month. :class:`ClosedMonths` sorts a period's months out: the
summary's rows for those, the deals' own rows for the rest and for the parts of months a
period cuts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aggregates.deal import DealStatus
from aggregates.exchange_rates import RateTable
from event_store.read_model_store import SqlCursor, sql_text
from projections.currency import EPOCH_DAY
from projections.row_projection import RowDict
from projections.stage_conversion import month_start_sql, month_start_us, next_month_start_us
from projections.units import MICROS_PER_DAY

CLOSED_SUMMARY_TABLE = "rm_closed_by_month"
BREAKDOWN_COLUMNS = {
    "owner": "owner_id",
    "source": "source",
    "lost_reason": "lost_reason",
    "competitor": "lost_competitor",
}
"""Each breakdown the summary keeps, and the deal column it groups by."""
CLOSED_SUMMARY_KEY = (
    "organization_id",
    "breakdown",
    "pipeline_id",
    "status",
    "owner_key",
    "close_month_us",
    "currency",
    "keyed",
    "key_value",
)
"""``keyed`` is 0 where the deal has no value in the breakdown's column (``key_value`` '')."""
SUMS = ("deals", "value_e4", "cycle_us")
CLOSED_STATUSES = (DealStatus.WON.value, DealStatus.LOST.value)

Sums = dict[tuple[Any, ...], list[int]]


def closed_summary_schema() -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {CLOSED_SUMMARY_TABLE} ("
        "organization_id TEXT NOT NULL, breakdown TEXT NOT NULL, pipeline_id TEXT NOT NULL, "
        "status TEXT NOT NULL, owner_key TEXT NOT NULL, close_month_us BIGINT NOT NULL, "
        "currency TEXT NOT NULL, keyed INTEGER NOT NULL, key_value TEXT NOT NULL, "
        "deals BIGINT NOT NULL, value_e4 NUMERIC(38) NOT NULL, cycle_us NUMERIC(38) NOT NULL, "
        f"PRIMARY KEY ({', '.join(CLOSED_SUMMARY_KEY)}))",
        # Rows a batch empties are deleted after it: found without scanning the table.
        f"CREATE INDEX IF NOT EXISTS {CLOSED_SUMMARY_TABLE}_emptied "
        f"ON {CLOSED_SUMMARY_TABLE} (deals) WHERE deals = 0",
    ]


def contributions(row: RowDict | None) -> Iterable[tuple[tuple[Any, ...], int, int]]:
    """A deal row's (summary key, value, cycle) in each breakdown; none unless closed."""
    if row is None or row["status"] not in CLOSED_STATUSES or row["closed_at_us"] is None:
        return
    closed_at = row["closed_at_us"]
    month, owner_key = month_start_us(closed_at), row["owner_id"] or ""
    for breakdown, column in BREAKDOWN_COLUMNS.items():
        value = row[column]
        key = (
            row["organization_id"],
            breakdown,
            row["pipeline_id"],
            row["status"],
            owner_key,
            month,
            row["currency"],
            int(value is not None),
            value or "",
        )
        yield key, int(row["value_e4"]), closed_at - row["opened_at_us"]


def move_closed_contributions(
    cursor: SqlCursor, before: dict[str, RowDict | None], after: dict[str, RowDict]
) -> None:
    """Take each changed deal's old contribution out of the summary and add its new one."""
    sums: Sums = {}
    for key, new in after.items():
        for row, sign in ((before[key], -1), (new, +1)):
            for summary_key, value_e4, cycle_us in contributions(row):
                found = sums.setdefault(summary_key, [0, 0, 0])
                found[0] += sign
                found[1] += sign * value_e4
                found[2] += sign * cycle_us
    changed = [(*key, *found) for key, found in sorted(sums.items()) if any(found)]
    if not changed:  # in key order: concurrent workers lock rows in the same order
        return
    cursor.insert_rows(
        CLOSED_SUMMARY_TABLE,
        (*CLOSED_SUMMARY_KEY, *SUMS),
        changed,
        f"ON CONFLICT ({', '.join(CLOSED_SUMMARY_KEY)}) DO UPDATE SET "
        + ", ".join(f"{s} = {CLOSED_SUMMARY_TABLE}.{s} + excluded.{s}" for s in SUMS),
    )
    cursor.execute(f"DELETE FROM {CLOSED_SUMMARY_TABLE} WHERE deals = 0")


def summarize_closed_deals(
    cursor: SqlCursor, deals_table: str, breakdowns: Sequence[str] = tuple(BREAKDOWN_COLUMNS)
) -> None:
    """The summary's rows of ``breakdowns`` from the closed deals' rows, into a cleared
    table: what :func:`move_closed_contributions` keeps batch by batch."""
    month = month_start_sql(cursor.dialect, "closed_at_us")
    statuses = ", ".join(map(sql_text, CLOSED_STATUSES))
    for breakdown in breakdowns:
        column = BREAKDOWN_COLUMNS[breakdown]
        rest = (  # of the key, after the organization and the breakdown
            f"pipeline_id, status, COALESCE(owner_id, ''), {month}, currency, "
            f"CASE WHEN {column} IS NULL THEN 0 ELSE 1 END, COALESCE({column}, '')"
        )
        cursor.execute(
            f"INSERT INTO {CLOSED_SUMMARY_TABLE} ({', '.join((*CLOSED_SUMMARY_KEY, *SUMS))}) "
            f"SELECT organization_id, {sql_text(breakdown)}, {rest}, "
            "COUNT(*), SUM(value_e4), SUM(closed_at_us - opened_at_us) "
            f"FROM {deals_table} WHERE closed_at_us IS NOT NULL AND status IN ({statuses}) "
            f"GROUP BY organization_id, {rest}"
        )


class ClosedMonths:
    """Which closes of a period ``[from_us, to_us)`` the summary serves — its whole months,
    in each currency whose rate holds through the month — and SQL for the others, which are
    read from the deals' rows."""

    def __init__(self, from_us: int, to_us: int, rates: RateTable) -> None:
        self.from_us, self.to_us = from_us, to_us
        self.first_month_us = next_month_start_us(from_us)
        """The first month the period holds whole (the far past stays itself)."""
        self.end_month_us = month_start_us(to_us)
        """The start of the month after the last one it holds whole."""
        self.base_currency = rates.base_currency
        self._rated = _whole_rate_months(rates)

    @property
    def any_whole_month(self) -> bool:
        return self.first_month_us < self.end_month_us

    def summary_where(self) -> tuple[str, list[Any]]:
        """The summary rows of the period's whole months."""
        return "close_month_us >= ? AND close_month_us < ?", [
            self.first_month_us,
            self.end_month_us,
        ]

    def serves(self, currency: str, month_us: int) -> bool:
        """Whether a month's sum in a currency converts as each of its deals would."""
        if currency == self.base_currency:
            return True
        rated = self._rated.get(currency)
        return rated is not None and month_us >= rated[0] and month_us not in rated[1]

    def deals_where(self, unserved: Iterable[tuple[str, int]]) -> tuple[str, list[Any]] | None:
        """The deals' rows the summary left: the parts of months the period cuts, and the
        ``unserved`` (currency, month) pairs; ``None`` for none. The period's own bounds on
        ``closed_at_us`` go beside it."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.from_us < self.first_month_us:
            clauses.append("closed_at_us < ?")
            params.append(self.first_month_us)
        if self.end_month_us < self.to_us:
            clauses.append("closed_at_us >= ?")
            params.append(self.end_month_us)
        for currency, month in sorted(set(unserved)):
            clauses.append("(currency = ? AND closed_at_us >= ? AND closed_at_us < ?)")
            params.extend([currency, month, next_month_start_us(month + 1)])
        return (f"({' OR '.join(clauses)})", params) if clauses else None


def _whole_rate_months(rates: RateTable) -> dict[str, tuple[int, frozenset[int]]]:
    """Each rated currency's first month with a rate in force from its first day, and the
    months in which a rate starts after the first day (split between two rates)."""
    months: dict[str, tuple[int, frozenset[int]]] = {}
    for currency, days in rates.effective_days().items():
        if currency == rates.base_currency or not days:
            continue
        first = (days[0] - EPOCH_DAY).days * MICROS_PER_DAY
        split = frozenset(
            month_start_us((day - EPOCH_DAY).days * MICROS_PER_DAY) for day in days if day.day != 1
        )
        months[currency] = (next_month_start_us(first), split)
    return months


def rate_day_of_month(month_us: int) -> int:
    """The day (since 1970-01-01) whose rate converts a served month's sum: its first."""
    return month_us // MICROS_PER_DAY
