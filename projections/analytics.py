"""The sales analytics of SPEC §5, in business time, now or as they stood at any instant.

Every figure takes the filters pipeline, owner, period ``[from, to)`` and ``as_of``. Without
``as_of`` the figures read the current read models; with it they read the temporal ones —
each deal's version valid at that instant (``rm_deals_history``) and the stage visits entered
by then (``rm_stage_visits``) — so history backfilled later with past business times counts
where it belongs. Nothing replays the log per request.

Percentiles interpolate linearly between closest ranks (``statistics.quantiles(method=
"inclusive")``, ``numpy.percentile``); durations are days as decimals; a ratio or statistic over
an empty set is None. Money is per currency (exact decimals); conversion to the organization's
base currency is added by :mod:`projections.currency`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any
from uuid import UUID

from aggregates.deal import DealStatus
from aggregates.exchange_rates import RateTable
from aggregates.pipeline import PIPELINES, StageKind
from aggregates.pipeline import PipelineDefinition as Pipeline
from event_store.read_model_store import ReadModelStore, SqlCursor, sql_text
from projections.closed_summary import (
    CLIENT_CATEGORY,
    CLOSED_SUMMARY_TABLE,
    ClosedMonths,
    rate_day_of_month,
)
from projections.currency import (
    EPOCH_DAY,
    FOUR_PLACES,
    BaseAmount,
    Rates,
    close_day_sql,
    rate_day_sql,
)
from projections.deals import (
    ANY_VISIT_SPAN,
    CLOSED_DEALS,
    FORECAST_TABLE,
    OPEN_DEALS,
    PIPELINE_TOTALS_TABLE,
    PIPELINE_VALUE_TABLE,
    STAGE_VISITS_TABLE,
    DealsProjection,
)
from projections.listing import InvalidQuery
from projections.row_projection import FOREVER_US
from projections.scope_keys import in_scope
from projections.snapshot_reads import SnapshotReads, fetch_rows
from projections.spans import union_by_span, valid_at_by_span
from projections.stage_conversion import (
    CONVERSIONS_TABLE,
    ENTRIES_TABLE,
    TRANSITIONS_TABLE,
    month_start_sql,
    month_start_us,
    next_month_start_us,
    stage_ranks,
)
from projections.stage_durations import DurationScope, StageDurationFigures
from projections.units import (
    MICROS_PER_DAY,
    instant_from_micros,
    micros,
    money_from_e4,
    weighted_from_e6,
)

PipelinesOf = Callable[[UUID], dict[str, Pipeline]]
NEVER_US = -(2**62)


@dataclass(frozen=True)
class AnalyticsFilter:
    organization_id: UUID
    pipeline_id: str | None = None
    owner_id: str | None = None
    period_from: datetime | None = None
    period_to: datetime | None = None
    as_of: datetime | None = None

    def check(self, pipelines: dict[str, Pipeline]) -> None:
        if self.pipeline_id is not None and self.pipeline_id not in pipelines:
            raise InvalidQuery("pipeline", f"There is no pipeline {self.pipeline_id!r}.")
        if self.period_from and self.period_to and self.period_from >= self.period_to:
            raise InvalidQuery("to", "The period's end must be after its start.")

    @property
    def from_us(self) -> int:
        return NEVER_US if self.period_from is None else micros(self.period_from)

    @property
    def to_us(self) -> int:
        return FOREVER_US if self.period_to is None else micros(self.period_to)

    @property
    def as_of_us(self) -> int:
        return FOREVER_US - 1 if self.as_of is None else micros(self.as_of)


@dataclass(frozen=True)
class Money:
    """An amount in one currency, with the number of deals behind it."""

    currency: str
    deals: int
    value: Decimal


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    deals: int
    value: Decimal
    weighted_value: Decimal


@dataclass(frozen=True)
class BaseTotal:
    """Σ value and Σ weighted value in the base currency; null values name missing rates."""

    currency: str
    value: Decimal | None
    weighted_value: Decimal | None
    missing_rates: list[str]


@dataclass(frozen=True)
class StageValue:
    pipeline_id: str
    stage: str
    name: str
    probability: int
    deals: int
    by_currency: list[CurrencyTotal]
    base: BaseTotal


@dataclass(frozen=True)
class WinRate:
    won: int
    lost: int
    win_rate: float | None


@dataclass(frozen=True)
class DurationStats:
    deals: int
    mean_days: float | None
    median_days: float | None
    p90_days: float | None


@dataclass(frozen=True)
class SalesCycle:
    won: DurationStats
    lost: DurationStats


@dataclass(frozen=True)
class AverageDealSize:
    by_currency: list[Money]
    mean_by_currency: dict[str, Decimal]
    mean_in_base: BaseAmount


@dataclass(frozen=True)
class StageConversion:
    pipeline_id: str
    stage: str
    entered: int
    converted: int
    conversion_rate: float | None


@dataclass(frozen=True)
class Transition:
    pipeline_id: str
    from_stage: str
    to_stage: str
    count: int


@dataclass(frozen=True)
class Conversion:
    stages: list[StageConversion]
    transitions: list[Transition]


@dataclass(frozen=True)
class StageTime:
    pipeline_id: str
    stage: str
    visits: int
    mean_days: float | None
    median_days: float | None


@dataclass(frozen=True)
class Visit:
    deal_id: str
    pipeline_id: str
    stage: str
    visit_no: int
    from_stage: str | None
    entered_at: datetime
    left_at: datetime | None
    days: float


@dataclass(frozen=True)
class ForecastMonth:
    month: str
    open_deals: int
    by_currency: list[CurrencyTotal]
    won_so_far: list[Money]
    base: BaseTotal
    won_so_far_in_base: BaseAmount


@dataclass(frozen=True)
class Breakdown:
    key: str | None
    won: int
    lost: int
    won_value: list[Money]
    lost_value: list[Money]
    won_value_in_base: BaseAmount
    lost_value_in_base: BaseAmount


@dataclass(frozen=True)
class SalespersonFigures:
    owner_id: str | None
    won: int
    lost: int
    win_rate: float | None
    revenue_won: list[Money]
    revenue_won_in_base: BaseAmount
    mean_cycle_days: float | None
    open_deals: int
    open_pipeline: list[CurrencyTotal]
    open_pipeline_in_base: BaseTotal
    interactions_logged: int | None = field(default=None)


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks of an ascending, non-empty list."""
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def duration_stats(durations_us: list[int]) -> DurationStats:
    """Count, mean, median and p90 in days of some durations in µs (sorted as integers,
    turned into days only once computed)."""
    if not durations_us:
        return DurationStats(0, None, None, None)
    ordered = sorted(durations_us)
    return DurationStats(
        deals=len(ordered),
        mean_days=sum(ordered) / len(ordered) / MICROS_PER_DAY,
        median_days=percentile(ordered, 0.5) / MICROS_PER_DAY,
        p90_days=percentile(ordered, 0.9) / MICROS_PER_DAY,
    )


def first_day_on_or_after(instant: datetime) -> date:
    """The first calendar day (UTC midnight) at or after an instant."""
    instant = instant.astimezone(UTC)
    day = instant.date()
    return day if instant.timetz().replace(tzinfo=None) == time(0) else day + timedelta(days=1)


class DealStates:
    """``FROM … WHERE …`` for the deals as they stood at ``as_of`` (or now)."""

    def __init__(self, where: AnalyticsFilter) -> None:
        self.clauses, self.params = _scope(where, "owner_id")
        self.as_of_us = None if where.as_of is None else where.as_of_us
        self.by_span = False
        if where.as_of is None:
            self.table = "rm_deals"
        else:
            self.table = "rm_deals_history"
            self.also("valid_from_us <= ?", where.as_of_us).also("valid_to_us > ?", where.as_of_us)

    def also(self, clause: str, *params: Any) -> DealStates:
        """One more condition, led by a deal column (a join qualifies it by prefixing)."""
        self.clauses.append(clause)
        self.params.extend(params)
        return self

    def closed_in(self, where: AnalyticsFilter) -> DealStates:
        """Won or lost (as of the instant), with the close inside the period. As of an
        instant, a deal closed by then closed at or before it: that bounds the index range."""
        self.also(CLOSED_DEALS)
        if where.as_of is not None:
            self.also("closed_at_us <= ?", where.as_of_us)
        return self.also("closed_at_us >= ?", where.from_us).also("closed_at_us < ?", where.to_us)

    def open_deals(self) -> DealStates:
        """Open and not archived — as of an instant, read span class by span class from the
        open versions' index (:mod:`projections.spans`)."""
        self.by_span = self.as_of_us is not None
        return self.also(OPEN_DEALS)

    @property
    def where(self) -> str:
        return " AND ".join(self.clauses)

    def select(self, columns: str) -> tuple[str, list[Any]]:
        """``SELECT columns`` of these deals, a statement to select FROM, and its parameters."""
        statement = f"SELECT {columns} FROM {self.table} WHERE {self.where}"
        if not self.by_span:
            return statement, list(self.params)
        assert self.as_of_us is not None
        return union_by_span(statement, self.params, valid_at_by_span(self.as_of_us))


CLOSE_DAY = close_day_sql()


def sums_by_currency(rows: Iterable[Any], key: str = "currency") -> list[CurrencyTotal]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        total = totals[row[key]]
        total[0] += int(row["deals"])
        total[1] += int(row["value_e4"])
        total[2] += int(row["weighted_e6"])
    return [
        CurrencyTotal(currency, deals, money_from_e4(value), weighted_from_e6(weighted))
        for currency, (deals, value, weighted) in sorted(totals.items())
    ]


def money_by_currency(rows: Iterable[Any]) -> list[Money]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        totals[row["currency"]][0] += int(row["deals"])
        totals[row["currency"]][1] += int(row["value_e4"])
    return [
        Money(currency, deals, money_from_e4(value))
        for currency, (deals, value) in sorted(totals.items())
    ]


@dataclass(frozen=True)
class ClosedByKey:
    """The closed deals of a period grouped by a ``breakdown`` of the closed deals' summary:
    ``by_key`` reads them from the deals' rows — rows of key, status, currency, rate_day,
    deals, value_e4 (and cycle_us) — with ``{where}`` for its conditions, each led by
    ``qualifier`` (the deals' alias and a dot where it joins), ending ``AND status = ?``;
    ``leading_params`` go before the deals' own (a join's)."""

    where: AnalyticsFilter
    states: DealStates
    rates: RateTable
    breakdown: str
    by_key: str
    qualifier: str = ""
    leading_params: tuple[Any, ...] = ()

    def outcomes(self, *more: Any) -> list[list[Any]]:
        """The parameters of :meth:`from_deals`, once per outcome, with ``more`` after the
        deals' own."""
        return _each_outcome([*self.leading_params, *self.states.params, *more], named=True)

    def now(self) -> Callable[[SqlCursor], list[Any]] | None:
        """A task reading them now: from the summary for the whole months it serves
        (:class:`ClosedMonths`), from the deals' rows for the rest. ``None`` as of an
        instant, or for a period without a whole month: the deals' rows hold them all."""
        months = ClosedMonths(self.where.from_us, self.where.to_us, self.rates)
        if self.where.as_of is not None or not months.any_whole_month:
            return None
        clauses, params = _scope(self.where, "owner_key")
        within, month_params = months.summary_where()
        summary = (
            "SELECT CASE WHEN keyed = 1 THEN key_value END AS key, status, currency, "
            "close_month_us, SUM(deals) AS deals, SUM(value_e4) AS value_e4, "
            f"SUM(cycle_us) AS cycle_us FROM {CLOSED_SUMMARY_TABLE} "
            f"WHERE {' AND '.join(clauses)} AND breakdown = ? AND {within} "
            "GROUP BY keyed, key_value, status, currency, close_month_us"
        )

        def read(cursor: SqlCursor) -> list[Any]:
            cursor.execute(summary, [*params, self.breakdown, *month_params])
            rows: list[Any] = []
            unserved = []
            for row in cursor.fetchall():
                month = int(row["close_month_us"])
                if months.serves(row["currency"], month):
                    rows.append({**row, "rate_day": rate_day_of_month(month)})
                else:
                    unserved.append((row["currency"], month))
            rest = months.deals_where(unserved, self.qualifier)
            if rest is not None:
                statement = self.from_deals(rest[0])
                for outcome in self.outcomes(*rest[1]):
                    cursor.execute(statement, outcome)
                    rows += cursor.fetchall()
            return rows

        return read

    def from_deals(self, *more: str) -> str:
        """``by_key`` with the deals' conditions, and ``more`` (already qualified)."""
        conditions = [*(f"{self.qualifier}{clause}" for clause in self.states.clauses), *more]
        return self.by_key.replace("{where}", " AND ".join(conditions))


class SalesAnalytics:
    """Answers every analytic of SPEC §5 that the CRM's deal data supports."""

    def __init__(self, store: ReadModelStore, pipelines_of: PipelinesOf | None = None) -> None:
        self.store = store
        self.reads = SnapshotReads(store)
        self.pipelines_of: PipelinesOf = pipelines_of or (lambda _: dict(PIPELINES))
        self.rates = Rates(store)

    def base_total(
        self, where: AnalyticsFilter, totals: list[CurrencyTotal], rates: RateTable
    ) -> BaseTotal:
        """Open money in the base currency at the rate effective at ``as_of`` (or today)."""
        on = as_of_day(where)
        value, weighted = BaseAmount(rates.base_currency), BaseAmount(rates.base_currency)
        for total in totals:
            value.add(rates, total.value, total.currency, on)
            weighted.add(rates, total.weighted_value, total.currency, on)
        value, weighted = value.rounded(), weighted.rounded()
        return BaseTotal(rates.base_currency, value.value, weighted.value, value.missing_rates)

    @staticmethod
    def closed_in_base(rows: Iterable[Any], rates: RateTable) -> BaseAmount:
        """Closed money (rows of currency, rate_day and value_e4 summed over the deals closed
        that day, or converted by that day's rate: :func:`rate_day_sql`) at the day's rate."""
        amount = BaseAmount(rates.base_currency)
        at_rate: Counter[tuple[str, Decimal]] = Counter()  # value_e4 by currency and rate
        for row in rows:
            on = EPOCH_DAY + timedelta(days=int(row["rate_day"]))
            rate = rates.rate(row["currency"], on)
            if rate is None:
                amount.add(rates, Decimal(0), row["currency"], on)  # names the missing rate
            else:  # summed exactly first: one multiplication per rate, not per row
                at_rate[(row["currency"], rate)] += int(row["value_e4"])
        for (_, rate), value_e4 in at_rate.items():
            if amount.value is not None:
                amount.value += money_from_e4(value_e4) * rate
        return amount.rounded()

    # --- pipeline value and forecast ----------------------------------------------------

    def pipeline_value(self, where: AnalyticsFilter) -> list[StageValue]:
        """Open deals per stage — the period filters on the expected close date."""
        rates = self.rates.table(where.organization_id)
        pipelines = self._checked(where)
        if where.as_of is None:
            rows = self._current_pipeline_value(where)
        else:
            states = DealStates(where).open_deals()
            self._expected_close_in(states, where)
            deals, params = states.select("pipeline_id, stage, currency, value_e4, probability")
            rows = self.reads.query(
                "SELECT pipeline_id, stage, currency, COUNT(*) AS deals, "
                "SUM(value_e4) AS value_e4, SUM(value_e4 * probability) AS weighted_e6 "
                f"FROM ({deals}) open_deals GROUP BY pipeline_id, stage, currency",
                params,
            )
        by_stage: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for row in rows:
            by_stage[(row["pipeline_id"], row["stage"])].append(row)
        result = []
        for pipeline in self._selected(where, pipelines):
            for stage in pipeline.stages:
                if stage.kind is not StageKind.OPEN:
                    continue
                totals = sums_by_currency(by_stage[(pipeline.id, stage.id)])
                result.append(
                    StageValue(
                        pipeline.id,
                        stage.id,
                        stage.name,
                        stage.probability,
                        sum(t.deals for t in totals),
                        totals,
                        self.base_total(where, totals, rates),
                    )
                )
        return result

    def forecast(self, where: AnalyticsFilter) -> list[ForecastMonth]:
        """Open deals by expected close month (Σ value, Σ weighted), beside the deals won in
        each month (by close date) so far. The period filters the open deals' expected close
        date and the won deals' close time."""
        rates = self.rates.table(where.organization_id)
        self._checked(where)
        open_rows, won_rows = self.reads.queries(
            [self._open_by_close_month(where), self._won_by_close_month(where, rates)]
        )
        by_month: dict[str, list[Any]] = defaultdict(list)
        for row in open_rows:
            by_month[row["month"]].append(row)
        won_by_month: dict[str, list[Any]] = defaultdict(list)
        for row in won_rows:
            won_by_month[_month_of(int(row["month_start_us"]))].append(row)
        return [
            self._forecast_month(where, month, by_month[month], won_by_month[month], rates)
            for month in sorted(set(by_month) | set(won_by_month))
        ]

    def _won_by_close_month(
        self, where: AnalyticsFilter, rates: RateTable
    ) -> tuple[str, list[Any]]:
        """The deals won in the period by close month, currency and the day whose rate
        converts them (:func:`rate_day_sql`): a few rows a month. Summed by close day first,
        so the month and the rate day are worked out once a day, not once a deal."""
        won = DealStates(where).closed_in(where).also("status = ?", DealStatus.WON.value)
        day_start = f"close_day * {MICROS_PER_DAY}"
        month_start = month_start_sql(self.store.dialect, day_start)
        rate_day = rate_day_sql(rates, closed_at=day_start)
        by_day = (
            f"SELECT currency, {CLOSE_DAY} AS close_day, COUNT(*) AS deals, "
            f"SUM(value_e4) AS value_e4 FROM {won.table} WHERE {won.where} "
            f"GROUP BY currency, {CLOSE_DAY}"
        )
        return (
            f"SELECT currency, {month_start} AS month_start_us, {rate_day} AS rate_day, "
            f"SUM(deals) AS deals, SUM(value_e4) AS value_e4 FROM ({by_day}) won_by_day "
            f"GROUP BY currency, {month_start}, {rate_day}",
            won.params,
        )

    def _open_by_close_month(self, where: AnalyticsFilter) -> tuple[str, list[Any]]:
        """The open deals' (month, currency, deals, value, weighted) by expected close month:
        now and over whole months from the open deals' monthly summary (a row per pipeline,
        owner, currency and month), otherwise from the deals (their versions at as_of)."""
        bounds = [
            first_day_on_or_after(instant)
            for instant in (where.period_from, where.period_to)
            if instant is not None
        ]
        if where.as_of is None and all(day.day == 1 for day in bounds):
            clauses, params = _scope(where, "owner_key")
            if where.period_from is not None:
                clauses.append("close_month >= ?")
                params.append(first_day_on_or_after(where.period_from).strftime("%Y-%m"))
            if where.period_to is not None:
                clauses.append("close_month < ?")
                params.append(first_day_on_or_after(where.period_to).strftime("%Y-%m"))
            return (
                "SELECT close_month AS month, currency, SUM(deals) AS deals, "
                "SUM(value_e4) AS value_e4, SUM(weighted_e6) AS weighted_e6 "
                f"FROM {FORECAST_TABLE} WHERE {' AND '.join(clauses)} "
                "GROUP BY close_month, currency",
                params,
            )
        states = DealStates(where).open_deals()
        self._expected_close_in(states, where)
        deals, params = states.select("expected_close_date, currency, value_e4, probability")
        return (
            "SELECT substr(expected_close_date, 1, 7) AS month, currency, "
            "COUNT(*) AS deals, SUM(value_e4) AS value_e4, "
            "SUM(value_e4 * probability) AS weighted_e6 FROM "
            f"({deals}) open_deals GROUP BY substr(expected_close_date, 1, 7), currency",
            params,
        )

    def forecast_history(
        self, where: AnalyticsFilter, month: date, first: datetime, step: timedelta, count: int
    ) -> list[ForecastMonth | None]:
        """The forecast for one month (its first day) as it stood at ``count`` instants,
        ``first`` and every ``step`` after it — None where it had neither open nor won deals.

        One pass over the versions of the deals expected to close in the month (or won in it)
        valid at any of the instants: each version counts at the instants from the first at
        or after its start to the last before its end, a run that SQL works out and groups."""
        rates = self.rates.table(where.organization_id)
        self._checked(where)
        start_us, step_us = micros(first), step // timedelta(microseconds=1)
        last_us = start_us + (count - 1) * step_us
        following = (month + timedelta(days=32)).replace(day=1)
        runs = (
            f"{_instants_from(start_us, step_us, 'valid_from_us')} AS first_k, "
            f"{_instants_from(start_us, step_us, 'valid_to_us')} AS end_k"
        )
        scope, params = _scope(where, "owner_id")
        scope.append("valid_to_us > ? AND valid_from_us <= ?")  # valid at some instant
        params += [start_us, last_us]
        month_us = [micros(datetime.combine(day, time(0), UTC)) for day in (month, following)]
        open_rows, won_rows = self.reads.queries(
            [
                (
                    f"SELECT {runs}, currency, COUNT(*) AS deals, SUM(value_e4) AS value_e4, "
                    "SUM(value_e4 * probability) AS weighted_e6 FROM rm_deals_history "
                    f"WHERE {' AND '.join(scope)} AND {OPEN_DEALS} AND expected_close_date >= ? "
                    "AND expected_close_date < ? GROUP BY first_k, end_k, currency",
                    [*params, month.isoformat(), following.isoformat()],
                ),
                (
                    f"SELECT {runs}, currency, {CLOSE_DAY} AS rate_day, COUNT(*) AS deals, "
                    f"SUM(value_e4) AS value_e4 FROM rm_deals_history "
                    f"WHERE {' AND '.join(scope)} AND {CLOSED_DEALS} AND status = ? "
                    "AND closed_at_us >= ? AND closed_at_us < ? "
                    f"GROUP BY first_k, end_k, currency, {CLOSE_DAY}",
                    [*params, DealStatus.WON.value, *month_us],
                ),
            ]
        )
        open_at: list[list[Any]] = [[] for _ in range(count)]
        won_at: list[list[Any]] = [[] for _ in range(count)]
        for rows, at in ((open_rows, open_at), (won_rows, won_at)):
            for row in rows:
                for k in range(int(row["first_k"]), min(int(row["end_k"]), count)):
                    at[k].append(row)
        points: list[ForecastMonth | None] = []
        for k in range(count):
            instant = first + k * step
            at_instant = replace(where, period_from=None, period_to=None, as_of=instant)
            points.append(
                self._forecast_month(
                    at_instant, month.strftime("%Y-%m"), open_at[k], won_at[k], rates
                )
                if open_at[k] or won_at[k]
                else None
            )
        return points

    def _forecast_month(
        self,
        where: AnalyticsFilter,
        month: str,
        open_rows: list[Any],
        won_rows: list[Any],
        rates: RateTable,
    ) -> ForecastMonth:
        totals = sums_by_currency(open_rows)
        return ForecastMonth(
            month=month,
            open_deals=sum(int(r["deals"]) for r in open_rows),
            by_currency=totals,
            won_so_far=money_by_currency(won_rows),
            base=self.base_total(where, totals, rates),
            won_so_far_in_base=self.closed_in_base(won_rows, rates),
        )

    # --- closed deals ------------------------------------------------------------------

    def win_rate(self, where: AnalyticsFilter) -> WinRate:
        """won / (won + lost) among deals closed in the period."""
        self._checked(where)
        states = DealStates(where).closed_in(where)
        if where.as_of is None:  # each outcome a range of an index: counted side by side
            rows = self.reads.side_by_side(
                f"SELECT status, COUNT(*) AS deals FROM {states.table} "
                f"WHERE {states.where} AND status = ? GROUP BY status",
                _each_outcome(states.params),
            )
        else:  # one scan of the history serves both
            rows = self.reads.query(
                f"SELECT status, COUNT(*) AS deals FROM {states.table} WHERE {states.where} "
                "GROUP BY status",
                states.params,
            )
        counts = {row["status"]: int(row["deals"]) for row in rows}
        won, lost = counts.get(DealStatus.WON.value, 0), counts.get(DealStatus.LOST.value, 0)
        return WinRate(won=won, lost=lost, win_rate=won / (won + lost) if won + lost else None)

    def average_deal_size(self, where: AnalyticsFilter) -> AverageDealSize:
        """Mean value of the deals won in the period, per currency."""
        self._checked(where)
        rates = self.rates.table(where.organization_id)
        states = DealStates(where).closed_in(where).also("status = ?", DealStatus.WON.value)
        rate_day = rate_day_sql(rates)
        rows = self.reads.query(
            f"SELECT currency, {rate_day} AS rate_day, COUNT(*) AS deals, "
            f"SUM(value_e4) AS value_e4 FROM {states.table} WHERE {states.where} "
            f"GROUP BY currency, {rate_day}",
            states.params,
        )
        totals = money_by_currency(rows)
        won = sum(int(row["deals"]) for row in rows)
        in_base = self.closed_in_base(rows, rates)
        if in_base.value is not None:
            in_base.value = (in_base.value / won).quantize(FOUR_PLACES) if won else None
        return AverageDealSize(
            by_currency=totals,
            mean_by_currency={
                t.currency: (t.value / t.deals).quantize(FOUR_PLACES) for t in totals
            },
            mean_in_base=in_base,
        )

    def sales_cycle(self, where: AnalyticsFilter) -> SalesCycle:
        """close − open time of deals won (and, apart, lost) in the period, in days."""
        self._checked(where)
        states = DealStates(where).closed_in(where)
        stats = self._duration_stats(
            "status", "closed_at_us - opened_at_us", f"{states.table} WHERE {states.where}",
            states.params,
            # Now, each outcome is a range of an index; as of an instant, one scan serves both.
            groups=(DealStatus.WON.value, DealStatus.LOST.value) if where.as_of is None else None,
        )  # fmt: skip
        empty = DurationStats(0, None, None, None)
        return SalesCycle(
            won=stats.get(DealStatus.WON.value, empty),
            lost=stats.get(DealStatus.LOST.value, empty),
        )

    def win_loss(self, where: AnalyticsFilter, dimension: str) -> list[Breakdown]:
        """Won and lost deals closed in the period, counted and summed by a dimension:
        lost_reason, competitor, source, owner or client_category (as of the instant)."""
        rates = self.rates.table(where.organization_id)
        self._checked(where)
        states = DealStates(where).closed_in(where)
        column = WIN_LOSS_COLUMNS.get(dimension)
        if column is None:
            choices = ", ".join(sorted(WIN_LOSS_COLUMNS))
            raise InvalidQuery("by", f"Break down by one of {choices}.")
        if dimension == CLIENT_CATEGORY:
            rows = self._closed_with_client_category(states, where, rates)
        else:
            rate_day = rate_day_sql(rates)
            closed_by_key = (
                f"SELECT {column} AS key, {OUTCOME} AS status, currency, {rate_day} AS rate_day, "
                "COUNT(*) AS deals, SUM(value_e4) AS value_e4 "
                f"FROM {states.table} WHERE {{where}} AND status = ? "
                f"GROUP BY {column}, currency, {rate_day}"
            )
            rows = self._closed_rows(ClosedByKey(where, states, rates, dimension, closed_by_key))
        grouped: dict[str | None, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            grouped[row["key"]][row["status"]].append(row)
        return [
            Breakdown(
                key=key,
                won=sum(int(r["deals"]) for r in outcome[DealStatus.WON.value]),
                lost=sum(int(r["deals"]) for r in outcome[DealStatus.LOST.value]),
                won_value=money_by_currency(outcome[DealStatus.WON.value]),
                lost_value=money_by_currency(outcome[DealStatus.LOST.value]),
                won_value_in_base=self.closed_in_base(outcome[DealStatus.WON.value], rates),
                lost_value_in_base=self.closed_in_base(outcome[DealStatus.LOST.value], rates),
            )
            for key, outcome in sorted(
                grouped.items(), key=lambda item: (item[0] is None, item[0] or "")
            )
        ]

    def salesperson_performance(self, where: AnalyticsFilter) -> list[SalespersonFigures]:
        """Per owner: won, lost, win rate, revenue won, mean cycle (deals closed in the
        period) and the open pipeline (as of the instant)."""
        rates = self.rates.table(where.organization_id)
        self._checked(where)
        closed = DealStates(where).closed_in(where)
        rate_day = rate_day_sql(rates)
        closed_by_owner = (
            f"SELECT owner_id AS key, {OUTCOME} AS status, currency, {rate_day} AS rate_day, "
            "COUNT(*) AS deals, SUM(value_e4) AS value_e4, "
            "SUM(closed_at_us - opened_at_us) AS cycle_us "
            f"FROM {closed.table} WHERE {{where}} AND status = ? "
            f"GROUP BY owner_id, currency, {rate_day}"
        )
        by_owner = ClosedByKey(where, closed, rates, "owner", closed_by_owner)
        open_pipeline = self._open_pipeline_by_owner(where)
        now = by_owner.now()
        if now is not None:  # the open part beside it
            tasks: list[Callable[[SqlCursor], list[Any]]] = [
                now,
                partial(fetch_rows, *open_pipeline),
            ]
            closed_rows, open_rows = self.reads.each(tasks)
        else:  # each outcome and the open part, all three side by side
            statement = by_owner.from_deals()
            won_rows, lost_rows, open_rows = self.reads.queries(
                [*((statement, params) for params in by_owner.outcomes()), open_pipeline]
            )
            closed_rows = won_rows + lost_rows
        owners: dict[str | None, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
        for row in closed_rows:
            owners[row["key"]][row["status"]].append(row)
        for row in open_rows:
            owners[row["owner_id"]]["open"].append(row)
        figures = []
        for owner, rows in sorted(
            owners.items(), key=lambda item: (item[0] is None, item[0] or "")
        ):
            won_rows, lost_rows = rows[DealStatus.WON.value], rows[DealStatus.LOST.value]
            won = sum(int(r["deals"]) for r in won_rows)
            lost = sum(int(r["deals"]) for r in lost_rows)
            cycle_us = sum(int(r["cycle_us"]) for r in won_rows)
            open_totals = sums_by_currency(rows["open"])
            figures.append(
                SalespersonFigures(
                    owner_id=owner,
                    won=won,
                    lost=lost,
                    win_rate=won / (won + lost) if won or lost else None,
                    revenue_won=money_by_currency(won_rows),
                    revenue_won_in_base=self.closed_in_base(won_rows, rates),
                    mean_cycle_days=cycle_us / won / MICROS_PER_DAY if won else None,
                    open_deals=sum(int(r["deals"]) for r in rows["open"]),
                    open_pipeline=open_totals,
                    open_pipeline_in_base=self.base_total(where, open_totals, rates),
                )
            )
        return figures

    # --- stages: conversion and time in stage ------------------------------------------

    def conversion(self, where: AnalyticsFilter) -> Conversion:
        """Per stage, of the deals that entered it in the period, the share that later
        entered a later stage of the pipeline or were won — from observed transitions — and
        the from → to transition counts (backward moves and re-entries included)."""
        pipelines = self._checked(where)
        stages, transitions = [], []
        for pipeline in self._selected(where, pipelines):
            open_ids = [stage.id for stage in pipeline.stages if stage.kind is StageKind.OPEN]
            if where.period_from is None:
                entered, converted = self._conversion_from_entries(where, pipeline.id)
            else:
                entered, converted = self._conversion_from_visits(where, pipeline, open_ids)
            for stage_id in open_ids:  # the open stages, in pipeline order
                stages.append(
                    StageConversion(
                        pipeline.id,
                        stage_id,
                        entered[stage_id],
                        converted[stage_id],
                        converted[stage_id] / entered[stage_id] if entered[stage_id] else None,
                    )
                )
            moves = self._transition_counts(where, pipeline.id)
            transitions += [
                Transition(pipeline.id, from_stage, to_stage, count)
                for (from_stage, to_stage), count in sorted(moves.items())
                if count
            ]
        return Conversion(stages, transitions)

    def _conversion_from_entries(
        self, where: AnalyticsFilter, pipeline_id: str
    ) -> tuple[Counter[str], Counter[str]]:
        """Entered and converted per stage over a period that starts with the log: each deal
        by its first visit of the stage (its first under the owner, for an owner), from the
        monthly counts, and from the entries themselves in the month ``to`` or ``as_of``
        cuts (:mod:`projections.stage_conversion`)."""
        entered_before = min(where.to_us, where.as_of_us + 1)
        converted_before = where.as_of_us + 1
        entered_cut = month_start_us(entered_before)
        converted_cut = month_start_us(converted_before)
        counts, counts_params = _counts_of_owner(where, pipeline_id)
        scope, params = in_scope(str(where.organization_id), pipeline_id)
        first = "first_of_stage = 1"
        if where.owner_id is not None:
            first = "first_of_owner = 1 AND owner_key = ?"
            params.append(where.owner_id)
        parts = [
            (
                "SELECT stage, SUM(deals) AS entered, SUM(CASE WHEN converted_month_us < ? "
                f"THEN deals ELSE 0 END) AS converted FROM {CONVERSIONS_TABLE} "
                f"WHERE {counts} AND entered_month_us < ? GROUP BY stage",
                [converted_cut, *counts_params, entered_cut],
            )
        ]
        if entered_cut < entered_before:
            parts.append(
                (
                    "SELECT stage, COUNT(*) AS entered, "
                    "SUM(CASE WHEN converted_at_us < ? THEN 1 ELSE 0 END) AS converted "
                    f"FROM {ENTRIES_TABLE} WHERE {scope} AND {first} "
                    "AND entered_at_us >= ? AND entered_at_us < ? GROUP BY stage",
                    [converted_before, *params, entered_cut, entered_before],
                )
            )
        if converted_cut < converted_before:
            parts.append(
                (
                    "SELECT stage, 0 AS entered, COUNT(*) AS converted "
                    f"FROM {ENTRIES_TABLE} WHERE {scope} AND {first} AND converted_at_us >= ? "
                    "AND converted_at_us < ? AND entered_at_us < ? GROUP BY stage",
                    [*params, converted_cut, converted_before, entered_cut],
                )
            )
        entered: Counter[str] = Counter()
        converted: Counter[str] = Counter()
        for row in self.reads.query(*_union_all(parts)):
            entered[row["stage"]] += int(row["entered"] or 0)
            converted[row["stage"]] += int(row["converted"] or 0)
        return entered, converted

    def _conversion_from_visits(
        self, where: AnalyticsFilter, pipeline: Pipeline, open_ids: list[str]
    ) -> tuple[Counter[str], Counter[str]]:
        """Entered and converted per stage over a period with a start: one pass over the
        pipeline's visits from that start up to as_of, per deal: for each open stage, the
        deal's first visit of it in scope (period, owner) and its last visit of a
        higher-ranked stage; converted when that came later."""
        rank = _rank_sql(pipeline).replace("@stage", "stage")
        ranks = stage_ranks(pipeline.stages)
        clauses, params = self._visits_in_period(where, pipeline.id)
        pipeline_scope, pipeline_params = in_scope(str(where.organization_id), pipeline.id)
        scope = " AND ".join(clauses[1:])
        scope_params = params[len(pipeline_params) :]
        per_deal = ", ".join(
            f"MIN(CASE WHEN stage = ? AND {scope} THEN visit_no END) AS first_{n}, "
            f"MAX(CASE WHEN {rank} > {ranks[stage_id]} THEN visit_no END) AS above_{n}"
            for n, stage_id in enumerate(open_ids)
        )
        totals = ", ".join(
            f"COUNT(first_{n}) AS entered_{n}, "
            f"SUM(CASE WHEN above_{n} > first_{n} THEN 1 ELSE 0 END) AS converted_{n}"
            for n in range(len(open_ids))
        )
        # A later visit of a higher stage entered after the first visit in scope, so after
        # the period's start: the visits before it need not be read.
        counted = self.reads.query(
            f"SELECT {totals} FROM (SELECT id, {per_deal} FROM {STAGE_VISITS_TABLE} "
            f"WHERE {pipeline_scope} AND entered_at_us >= ? "
            f"AND entered_at_us <= ? AND {ANY_VISIT_SPAN} GROUP BY id) deals",
            [
                *(value for stage_id in open_ids for value in (stage_id, *scope_params)),
                *pipeline_params,
                where.from_us,
                where.as_of_us,
            ],
        )[0]
        entered: Counter[str] = Counter()
        converted: Counter[str] = Counter()
        for n, stage_id in enumerate(open_ids):
            entered[stage_id] = int(counted[f"entered_{n}"])
            converted[stage_id] = int(counted[f"converted_{n}"] or 0)
        return entered, converted

    def _transition_counts(
        self, where: AnalyticsFilter, pipeline_id: str
    ) -> Counter[tuple[str, str]]:
        """From → to moves of the visits entered in the period (up to as_of): the monthly
        counts for the months wholly inside it, the visits themselves for the rest."""
        low, high = where.from_us, min(where.to_us, where.as_of_us + 1)
        first_month, last_month = next_month_start_us(low), month_start_us(high)
        scope, params = in_scope(str(where.organization_id), pipeline_id)
        if where.owner_id is not None:
            scope += " AND owner_id = ?"
            params.append(where.owner_id)
        parts = []
        visits_in: list[tuple[int, int]] = [(low, high)]
        if first_month < last_month:
            counts, counts_params = _counts_of_owner(where, pipeline_id)
            parts.append(
                (
                    f"SELECT from_stage, stage, SUM(moves) AS moves FROM {TRANSITIONS_TABLE} "
                    f"WHERE {counts} AND entered_month_us >= ? AND entered_month_us < ? "
                    "GROUP BY from_stage, stage",
                    [*counts_params, first_month, last_month],
                )
            )
            visits_in = [(low, first_month), (last_month, high)]
        for since, until in visits_in:
            if since < until:
                parts.append(
                    (
                        "SELECT from_stage, stage, COUNT(*) AS moves "
                        f"FROM {STAGE_VISITS_TABLE} WHERE {scope} "
                        f"AND entered_at_us >= ? AND entered_at_us < ? AND {ANY_VISIT_SPAN} "
                        "AND from_stage IS NOT NULL GROUP BY from_stage, stage",
                        [*params, since, until],
                    )
                )
        moves: Counter[tuple[str, str]] = Counter()
        if parts:
            for row in self.reads.query(*_union_all(parts)):
                moves[(row["from_stage"], row["stage"])] += int(row["moves"])
        return moves

    def time_in_stage(self, where: AnalyticsFilter) -> list[StageTime]:
        """Every visit of an open stage entered in the period; mean and median days per
        stage; a visit not yet left counts up to ``as_of`` (or now). Whole months come from
        the kept counts of finished visits (:mod:`projections.stage_durations`); the
        pipelines are read side by side, in one snapshot."""
        pipelines = self._checked(where)
        read: list[Callable[[SqlCursor], dict[str, StageDurationFigures]]] = []
        selected = self._selected(where, pipelines)
        for pipeline in selected:
            scope = DurationScope(
                organization_id=str(where.organization_id),
                pipeline_id=pipeline.id,
                owner_id=where.owner_id,
                entered_from_us=where.from_us,
                entered_until_us=min(where.to_us, where.as_of_us + 1),
                as_of_us=where.as_of_us,
                ends_open_at_us=self._now_us(where),
            )
            stages = [stage.id for stage in pipeline.stages if stage.kind is StageKind.OPEN]
            read.append(partial(DealsProjection.durations.read, scope=scope, stages=stages))
        return [
            StageTime(
                pipeline.id,
                stage,
                found.visits,
                None if found.mean_us is None else found.mean_us / MICROS_PER_DAY,
                None if found.median_us is None else found.median_us / MICROS_PER_DAY,
            )
            for pipeline, figures in zip(selected, self.reads.each(read), strict=True)
            for stage, found in figures.items()
        ]

    def visits(
        self, where: AnalyticsFilter, deal_id: str | None = None, limit: int | None = None
    ) -> list[Visit]:
        """Every visit (per deal and stage) of an open stage entered in the period, by deal
        and visit number; of one deal only, and at most ``limit``, if given."""
        pipelines = self._checked(where)
        selections = []
        for pipeline in self._selected(where, pipelines):
            clauses, params = self._open_stage_visits(where, pipeline)
            if deal_id is not None:
                clauses.append("id = ?")
                params.append(deal_id)
            selections.append((clauses, params))
        found = self._visits(where, selections, limit)
        found.sort(key=lambda visit: (visit.deal_id, visit.pipeline_id, visit.visit_no))
        return found if limit is None else found[:limit]

    def rotting(
        self, where: AnalyticsFilter, threshold_days: dict[str, float], limit: int | None = None
    ) -> list[Visit]:
        """Open deals whose current visit of a stage is longer than that stage's threshold,
        longest first; the first ``limit`` of them, if given."""
        pipelines = self._checked(where)
        selections = []
        for pipeline in self._selected(where, pipelines):
            clauses, params = self._open_stage_visits(where, pipeline)
            clauses.append("left_at_us > ?")
            params.append(where.as_of_us)
            until = self._now_us(where)
            limits = [
                (stage.id, until - round(threshold_days[stage.id] * MICROS_PER_DAY))
                for stage in pipeline.stages
                if stage.kind is StageKind.OPEN and stage.id in threshold_days
            ]
            if not limits:
                continue
            # Each stage's own limit as one CASE, not an OR of (stage, limit) pairs: those
            # led PostgreSQL to gather each stage from the stage index and sort them all,
            # where the span index reads the visits in order and stops at the LIMIT.
            cases = " ".join(
                f"WHEN {sql_text(stage_id)} THEN {int(entered_before)}"
                for stage_id, entered_before in limits
            )
            clauses.append(f"entered_at_us < (CASE stage {cases} ELSE {NEVER_US} END)")
            clauses.append("entered_at_us < ?")  # the loosest limit: a range of the index
            params.append(max(entered_before for _, entered_before in limits))
            selections.append((clauses, params))
        stuck = self._visits(
            where,
            selections,
            limit,
            order="entered_at_us, id",
            by_span=valid_at_by_span(where.as_of_us, "entered_at_us", "left_at_us"),
        )
        stuck.sort(key=lambda v: -v.days)
        return stuck if limit is None else stuck[:limit]

    # --- helpers -----------------------------------------------------------------------

    def _visits(
        self,
        where: AnalyticsFilter,
        selections: list[tuple[list[str], list[Any]]],
        limit: int | None = None,
        order: str = "id, visit_no",
        by_span: list[tuple[str, list[Any]]] | None = None,
    ) -> list[Visit]:
        """The visits of each selection (clauses and their parameters), in ``order``, at
        most ``limit`` of each; with ``by_span``, visits under way at an instant, read span
        class by span class (:func:`valid_at_by_span`)."""
        columns = "id, pipeline_id, stage, visit_no, from_stage, entered_at_us, left_at_us"
        statements = []
        for clauses, params in selections:
            chosen = f"SELECT {columns} FROM {STAGE_VISITS_TABLE} WHERE {' AND '.join(clauses)}"
            if by_span is not None:
                chosen, params = union_by_span(chosen, params, by_span)
            statements.append(
                (
                    f"SELECT {columns} FROM ({chosen}) chosen ORDER BY {order}"
                    + ("" if limit is None else " LIMIT ?"),
                    params if limit is None else [*params, limit],
                )
            )
        now_us, as_of_us = self._now_us(where), where.as_of_us
        visits = []
        for row in (row for rows in self.reads.queries(statements) for row in rows):
            entered, left = int(row["entered_at_us"]), int(row["left_at_us"])
            still_there = left > as_of_us
            visits.append(
                Visit(
                    deal_id=row["id"],
                    pipeline_id=row["pipeline_id"],
                    stage=row["stage"],
                    visit_no=int(row["visit_no"]),
                    from_stage=row["from_stage"],
                    entered_at=instant_from_micros(entered),
                    left_at=None if still_there else instant_from_micros(left),
                    days=((now_us if still_there else left) - entered) / MICROS_PER_DAY,
                )
            )
        return visits

    def _duration_stats(
        self,
        group: str,
        duration: str,
        source: str,
        params: list[Any],
        groups: Sequence[str] | None = None,
    ) -> dict[str, DurationStats]:
        """Count, mean, median and p90 in days of ``duration`` (µs) per ``group`` over
        ``FROM source``. PostgreSQL computes them, only the figures leave it; SQLite hands
        over the durations. Naming the ``groups`` (few, each an index range) reads each
        range on its own: no sort of the rows by group first."""
        if self.store.dialect == "postgres":
            figures = (
                f"COUNT(*) AS n, AVG({duration}) AS mean_us, percentile_cont(ARRAY[0.5, 0.9]) "
                f"WITHIN GROUP (ORDER BY {duration}) AS percentiles_us FROM {source}"
            )
            if groups is None:
                rows = self.reads.query(
                    f"SELECT {group} AS grp, {figures} GROUP BY {group}", params
                )
            else:
                rows = self.reads.side_by_side(
                    f"SELECT CAST(? AS TEXT) AS grp, {figures} AND {group} = ?",
                    [[key, *params, key] for key in groups],
                )
            return {
                row["grp"]: DurationStats(
                    int(row["n"]),
                    float(row["mean_us"]) / MICROS_PER_DAY,
                    row["percentiles_us"][0] / MICROS_PER_DAY,
                    row["percentiles_us"][1] / MICROS_PER_DAY,
                )
                for row in rows
                if int(row["n"])
            }
        # SQLite runs in this process: the durations themselves are cheap to take, and
        # sorting them here beats window functions over the rows. Gathered into one text per
        # group: 40,000 rows made in Python cost 68 ms, splitting the texts a few.
        durations = f"group_concat({duration})"
        if groups is None:
            rows = self.reads.query(
                f"SELECT {group} AS grp, {durations} AS ds FROM {source} GROUP BY {group}", params
            )
        else:
            rows = self.reads.one_by_one(
                f"SELECT CAST(? AS TEXT) AS grp, {durations} AS ds FROM {source} AND {group} = ?",
                [[key, *params, key] for key in groups],
            )
        return {
            row["grp"]: duration_stats(list(map(int, row["ds"].split(","))))
            for row in rows
            if row["ds"] is not None
        }

    @staticmethod
    def _now_us(where: AnalyticsFilter) -> int:
        """Where a visit not yet left ends: ``as_of``, or now."""
        return micros(datetime.now(UTC)) if where.as_of is None else where.as_of_us

    def _open_stage_visits(
        self, where: AnalyticsFilter, pipeline: Pipeline
    ) -> tuple[list[str], list[Any]]:
        clauses, params = self._visits_in_period(where, pipeline.id)
        open_stages = [s.id for s in pipeline.stages if s.kind is StageKind.OPEN]
        clauses.append(f"stage IN ({', '.join('?' * len(open_stages))})")
        return clauses, [*params, *open_stages]

    def _visits_in_period(
        self, where: AnalyticsFilter, pipeline_id: str
    ) -> tuple[list[str], list[Any]]:
        """The conditions of a pipeline's visits entered in the period (up to as_of), of the
        owner if one is given: the pipeline's first (:func:`in_scope`), then the rest."""
        pipeline, params = in_scope(str(where.organization_id), pipeline_id)
        clauses = [pipeline, "entered_at_us >= ?", "entered_at_us < ?", "entered_at_us <= ?"]
        params += [where.from_us, where.to_us, where.as_of_us]
        if where.owner_id is not None:
            clauses.append("owner_id = ?")
            params.append(where.owner_id)
        return clauses, params

    def _current_pipeline_value(self, where: AnalyticsFilter) -> list[Any]:
        clauses, params = _scope(where, "owner_key")
        if where.period_from is not None:
            clauses.append("expected_close_date >= ?")
            params.append(first_day_on_or_after(where.period_from).isoformat())
        if where.period_to is not None:
            clauses.append("expected_close_date < ?")
            params.append(first_day_on_or_after(where.period_to).isoformat())
        dated = where.period_from is not None or where.period_to is not None
        table = PIPELINE_VALUE_TABLE if dated else PIPELINE_TOTALS_TABLE
        return self.reads.query(
            "SELECT pipeline_id, stage, currency, SUM(deals) AS deals, "
            "SUM(value_e4) AS value_e4, SUM(weighted_e6) AS weighted_e6 "
            f"FROM {table} WHERE {' AND '.join(clauses)} "
            "GROUP BY pipeline_id, stage, currency",
            params,
        )

    @staticmethod
    def _open_pipeline_by_owner(where: AnalyticsFilter) -> tuple[str, list[Any]]:
        """Open deals per owner and currency: now from the open-pipeline summary (a few
        hundred rows), as of an instant from the deals' versions valid then."""
        if where.as_of is None:
            clauses, params = _scope(where, "owner_key")
            return (
                "SELECT NULLIF(owner_key, '') AS owner_id, currency, SUM(deals) AS deals, "
                "SUM(value_e4) AS value_e4, SUM(weighted_e6) AS weighted_e6 "
                f"FROM {PIPELINE_TOTALS_TABLE} WHERE {' AND '.join(clauses)} "
                "GROUP BY owner_key, currency",
                params,
            )
        deals, params = (
            DealStates(where).open_deals().select("owner_id, currency, value_e4, probability")
        )
        return (
            "SELECT owner_id, currency, COUNT(*) AS deals, SUM(value_e4) AS value_e4, "
            "SUM(value_e4 * probability) AS weighted_e6 "
            f"FROM ({deals}) open_deals GROUP BY owner_id, currency",
            params,
        )

    @staticmethod
    def _expected_close_in(states: DealStates, where: AnalyticsFilter) -> None:
        if where.period_from is not None:
            states.also(
                "expected_close_date >= ?", first_day_on_or_after(where.period_from).isoformat()
            )
        if where.period_to is not None:
            states.also(
                "expected_close_date < ?", first_day_on_or_after(where.period_to).isoformat()
            )

    def _closed_rows(self, closed: ClosedByKey) -> list[Any]:
        """The closed deals of the period by a breakdown: now from their monthly summary
        where it serves (:meth:`ClosedByKey.now`), else each outcome read from the deals'
        rows, side by side."""
        now = closed.now()
        if now is not None:
            (rows,) = self.reads.each([now])
            return rows
        return self.reads.side_by_side(closed.from_deals(), closed.outcomes())

    def _closed_with_client_category(
        self, states: DealStates, where: AnalyticsFilter, rates: RateTable
    ) -> list[Any]:
        client_params: tuple[Any, ...] = ()
        if where.as_of is None:
            clients, client_clause = "rm_clients", ""
        else:
            clients = "rm_clients_history"
            client_clause = " AND c.valid_from_us <= ? AND c.valid_to_us > ?"
            client_params = (where.as_of_us, where.as_of_us)
        rate_day = rate_day_sql(rates, "d.currency", "d.closed_at_us")
        by_category = (
            f"SELECT c.category AS key, {OUTCOME} AS status, d.currency AS currency, "
            f"{rate_day} AS rate_day, COUNT(*) AS deals, SUM(d.value_e4) AS value_e4 "
            f"FROM {states.table} d LEFT JOIN {clients} c ON c.id = d.client_id{client_clause} "
            "WHERE {where} AND d.status = ? "
            f"GROUP BY c.category, d.currency, {rate_day}"
        )
        return self._closed_rows(
            ClosedByKey(where, states, rates, CLIENT_CATEGORY, by_category, "d.", client_params)
        )

    def _checked(self, where: AnalyticsFilter) -> dict[str, Pipeline]:
        pipelines = self.pipelines_of(where.organization_id)
        where.check(pipelines)
        return pipelines

    @staticmethod
    def _selected(where: AnalyticsFilter, pipelines: dict[str, Pipeline]) -> list[Pipeline]:
        if where.pipeline_id is not None:
            return [pipelines[where.pipeline_id]]
        return list(pipelines.values())


WIN_LOSS_COLUMNS = {
    "lost_reason": "lost_reason",
    "competitor": "lost_competitor",
    "source": "source",
    "owner": "owner_id",
    "client_category": "client_category",
}


def _pipeline_scope(where: AnalyticsFilter, pipeline_id: str) -> tuple[str, list[Any]]:
    return "organization_id = ? AND pipeline_id = ?", [str(where.organization_id), pipeline_id]


def _counts_of_owner(where: AnalyticsFilter, pipeline_id: str) -> tuple[str, list[Any]]:
    """The rows of a stage-conversion count table (:mod:`projections.stage_conversion`) for
    the pipeline: the owner's, or all owners' together."""
    scope, params = _pipeline_scope(where, pipeline_id)
    if where.owner_id is None:
        return f"{scope} AND by_owner = 0 AND owner_key = ''", params
    return f"{scope} AND by_owner = 1 AND owner_key = ?", [*params, where.owner_id]


def _union_all(parts: list[tuple[str, list[Any]]]) -> tuple[str, list[Any]]:
    """Statements with the same columns as one (one snapshot), and their parameters."""
    return (
        " UNION ALL ".join(statement for statement, _ in parts),
        [value for _, values in parts for value in values],
    )


def _rank_sql(pipeline: Pipeline) -> str:
    """A SQL CASE giving ``@stage`` its rank (:func:`stage_ranks`); unknown stages rank -1."""
    ranks = stage_ranks(pipeline.stages)
    cases = [f"WHEN {sql_text(stage_id)} THEN {rank}" for stage_id, rank in ranks.items()]
    return "(CASE @stage " + " ".join(cases) + " ELSE -1 END)"


def _instants_from(start_us: int, step_us: int, column: str) -> str:
    """SQL: the number of the first instant ``start + k·step`` at or after ``column`` (0 if
    it is before the first): ⌈(column − start) / step⌉, from integers on both stores."""
    since, step = f"({column} - {int(start_us)})", int(step_us)
    return f"(CASE WHEN {since} <= 0 THEN 0 ELSE ({since} + {step - 1}) / {step} END)"


OUTCOME = "CAST(? AS TEXT)"
"""The outcome a closed-deal statement of :func:`_each_outcome` reads, named in its result
(its first parameter, with ``named``): one column fewer to group by than ``status``."""


def _each_outcome(params: list[Any], *, named: bool = False) -> list[list[Any]]:
    """``params`` once per outcome (won, lost), each followed by it: a closed-deal statement
    ending ``AND status = ?`` reads each outcome's range of the index, the two side by side;
    ``named``, each also led by it, for the :data:`OUTCOME` its result starts with."""
    return [
        [*([outcome] if named else []), *params, outcome]
        for outcome in (DealStatus.WON.value, DealStatus.LOST.value)
    ]


def _scope(where: AnalyticsFilter, owner_column: str) -> tuple[list[str], list[Any]]:
    """The organization, pipeline and owner asked for (the owner in ``owner_column``)."""
    clauses: list[str] = ["organization_id = ?"]
    params: list[Any] = [str(where.organization_id)]
    for column, value in (("pipeline_id", where.pipeline_id), (owner_column, where.owner_id)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return clauses, params


@lru_cache(maxsize=4096)
def _month_of(month_start_us: int) -> str:
    return instant_from_micros(month_start_us).strftime("%Y-%m")


def as_of_day(where: AnalyticsFilter) -> date:
    return (where.as_of or datetime.now(UTC)).astimezone(UTC).date()
