"""The closed deals summed by close month: what the win/loss breakdowns and the salespeople
read for the deals as they stand now.

Read from the deals' rows, each of those analytics groups every closed deal of the period:
55,163 on the analytics bench's book, 31–37 ms in-process. Here each closed deal adds to one
row per breakdown (owner, source, lost reason, competitor, its client's category now), keyed
by its pipeline, outcome, owner, close month and currency: 3,672 to 11,824 rows per breakdown
on that book, bounded by those combinations rather than by the number of deals.

A closed deal converts to the base currency at the rate effective on its close *day*, and
rates are reference data read when the figure is asked for (one recorded later may start
earlier). A month's sum therefore stands for its deals only where one rate holds the whole
month: in the base currency, or in a currency with a rate in force on the month's first day
and none starting later in the month. :class:`ClosedMonths` sorts a period's months out: the
summary's rows for those, the deals' own rows for the rest and for the parts of months a
period cuts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aggregates.deal import DealStatus
from aggregates.exchange_rates import RateTable
from event_store.read_model_store import SqlCursor, sql_text
from projections.currency import EPOCH_DAY
from projections.row_projection import RowDict, add_to_summary
from projections.stage_conversion import (
    StageConversions,
    month_start_sql,
    month_start_us,
    next_month_start_us,
)
from projections.units import MICROS_PER_DAY

CLOSED_SUMMARY_TABLE = "rm_closed_by_month"
BREAKDOWN_COLUMNS = {
    "owner": "owner_id",
    "source": "source",
    "lost_reason": "lost_reason",
    "competitor": "lost_competitor",
}
"""The breakdowns by a column of the deal's own row."""
CLIENT_CATEGORY = "client_category"
"""The breakdown by the category of the deal's client, as it is now."""
BREAKDOWNS = (*BREAKDOWN_COLUMNS, CLIENT_CATEGORY)
DEALS_TABLE, CLIENTS_TABLE = "rm_deals", "rm_clients"
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
_STATUSES = ", ".join(map(sql_text, CLOSED_STATUSES))

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


def contributions(
    row: Mapping[str, Any] | None,
    categories: Mapping[str, str | None],
    breakdowns: Sequence[str] = BREAKDOWNS,
) -> Iterable[tuple[tuple[Any, ...], int, int]]:
    """A deal row's (summary key, value, cycle) in each of ``breakdowns``, its client's
    category taken from ``categories``; none unless it is closed."""
    if row is None or row["status"] not in CLOSED_STATUSES or row["closed_at_us"] is None:
        return
    closed_at = row["closed_at_us"]
    month, owner_key = month_start_us(closed_at), row["owner_id"] or ""
    for breakdown in breakdowns:
        column = BREAKDOWN_COLUMNS.get(breakdown)
        value = row[column] if column else categories.get(row["client_id"])
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
    """Take each changed deal's old contribution out of the summary and add its new one
    (both by its client's category now: :func:`move_client_categories` moved the rest)."""
    closed = [
        row
        for key, new in after.items()
        for row in (before[key], new)
        if row is not None and row["closed_at_us"] is not None
    ]
    categories = client_categories(cursor, {row["client_id"] for row in closed})
    sums: Sums = {}
    for key, new in after.items():
        for row, sign in ((before[key], -1), (new, +1)):
            _add(sums, contributions(row, categories), sign)
    _add_to_summary(cursor, sums)


def move_client_categories(
    cursor: SqlCursor, before: dict[str, RowDict | None], after: dict[str, RowDict]
) -> None:
    """Move the closed deals of each client whose category changed from the old category's
    rows to the new one's (the deals' rows as they stood before the batch's deal events). A
    client new to the read models changes from none: fed from a stream partitioned by record
    (Kafka), its deals may have closed before its registration was folded."""
    moved: dict[str, tuple[str | None, str | None, str]] = {}
    for key, new in after.items():
        old = before[key]
        old_category = None if old is None else old["category"]
        if old_category != new["category"]:
            moved[key] = (old_category, new["category"], new["organization_id"])
    if not moved:
        return
    # Deal batches read the categories holding the deals' lock shared (from the start of
    # their deal events); a move holds it alone, so that a deal closing in another worker's
    # batch is either moved here or added there under the new category.
    StageConversions.lock(cursor, exclusive=True)
    sums: Sums = {}
    for organization_id in sorted({organization for _, _, organization in moved.values()}):
        clients = sorted(key for key, (_, _, org) in moved.items() if org == organization_id)
        among, params = cursor.one_of("client_id", clients)
        cursor.execute(
            f"SELECT * FROM {DEALS_TABLE} WHERE organization_id = ? AND {among} "
            f"AND closed_at_us IS NOT NULL AND status IN ({_STATUSES})",
            [organization_id, *params],
        )
        rows = cursor.fetchall()
        for side, sign in ((0, -1), (1, +1)):  # out of the old category, into the new one
            category_of = {client: change[side] for client, change in moved.items()}
            for row in rows:
                _add(sums, contributions(row, category_of, (CLIENT_CATEGORY,)), sign)
    _add_to_summary(cursor, sums)


def client_categories(cursor: SqlCursor, client_ids: Iterable[str]) -> dict[str, str | None]:
    """The category of each client (none for a client the read models do not have)."""
    ids = sorted(client_ids)
    found: dict[str, str | None] = {}
    for start in range(0, len(ids), 500):
        among, params = cursor.one_of("id", ids[start : start + 500])
        cursor.execute(f"SELECT id, category FROM {CLIENTS_TABLE} WHERE {among}", params)
        found.update((row["id"], row["category"]) for row in cursor.fetchall())
    return found


def _add(sums: Sums, items: Iterable[tuple[tuple[Any, ...], int, int]], sign: int) -> None:
    for summary_key, value_e4, cycle_us in items:
        found = sums.setdefault(summary_key, [0, 0, 0])
        found[0] += sign
        found[1] += sign * value_e4
        found[2] += sign * cycle_us


def _add_to_summary(cursor: SqlCursor, sums: Sums) -> None:
    changed = [(*key, *found) for key, found in sorted(sums.items()) if any(found)]
    add_to_summary(cursor, CLOSED_SUMMARY_TABLE, CLOSED_SUMMARY_KEY, SUMS, changed)


def summarize_closed_deals(cursor: SqlCursor, breakdowns: Sequence[str] = BREAKDOWNS) -> None:
    """The summary's rows of ``breakdowns`` from the closed deals' rows, into a cleared
    table: what :func:`move_closed_contributions` keeps batch by batch."""
    month = month_start_sql(cursor.dialect, "d.closed_at_us")
    for breakdown in breakdowns:
        column = BREAKDOWN_COLUMNS.get(breakdown)
        value = f"d.{column}" if column else "c.category"
        clients = "" if column else f" LEFT JOIN {CLIENTS_TABLE} c ON c.id = d.client_id"
        rest = (  # of the key, after the organization and the breakdown
            f"d.pipeline_id, d.status, COALESCE(d.owner_id, ''), {month}, d.currency, "
            f"CASE WHEN {value} IS NULL THEN 0 ELSE 1 END, COALESCE({value}, '')"
        )
        cursor.execute(
            f"INSERT INTO {CLOSED_SUMMARY_TABLE} ({', '.join((*CLOSED_SUMMARY_KEY, *SUMS))}) "
            f"SELECT d.organization_id, {sql_text(breakdown)}, {rest}, "
            "COUNT(*), SUM(d.value_e4), SUM(d.closed_at_us - d.opened_at_us) "
            f"FROM {DEALS_TABLE} d{clients} "
            f"WHERE d.closed_at_us IS NOT NULL AND d.status IN ({_STATUSES}) "
            f"GROUP BY d.organization_id, {rest}"
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

    def deals_where(
        self, unserved: Iterable[tuple[str, int]], qualifier: str = ""
    ) -> tuple[str, list[Any]] | None:
        """The deals' rows the summary left: the parts of months the period cuts, and the
        ``unserved`` (currency, month) pairs; ``None`` for none. The period's own bounds on
        the close go beside it. Each column is led by ``qualifier`` (an alias and a dot)."""
        closed_at, currency = f"{qualifier}closed_at_us", f"{qualifier}currency"
        clauses: list[str] = []
        params: list[Any] = []
        if self.from_us < self.first_month_us:
            clauses.append(f"{closed_at} < ?")
            params.append(self.first_month_us)
        if self.end_month_us < self.to_us:
            clauses.append(f"{closed_at} >= ?")
            params.append(self.end_month_us)
        for code, month in sorted(set(unserved)):
            clauses.append(f"({currency} = ? AND {closed_at} >= ? AND {closed_at} < ?)")
            params.extend([code, month, next_month_start_us(month + 1)])
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
