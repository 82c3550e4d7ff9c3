"""The sales analytics of SPEC §5 served by the core: pipeline value, win rate, sales cycle.

All in business time. Periods are half-open ``[from, to)``. Percentiles interpolate linearly
between closest ranks (``statistics.quantiles(method="inclusive")``, ``numpy.percentile``);
a ratio or statistic over an empty set is None.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID

from aggregates.deal import DealStatus
from aggregates.pipeline import PIPELINES, Pipeline, StageKind
from event_store.read_model_store import ReadModelStore
from projections.deals import PIPELINE_VALUE_TABLE
from projections.listing import InvalidQuery
from projections.units import MICROS_PER_DAY, micros, money_from_e4, weighted_from_e6


@dataclass(frozen=True)
class AnalyticsFilter:
    organization_id: UUID
    pipeline_id: str | None = None
    owner_id: str | None = None
    period_from: datetime | None = None
    period_to: datetime | None = None

    def check(self) -> None:
        if self.pipeline_id is not None and self.pipeline_id not in PIPELINES:
            raise InvalidQuery("pipeline", f"There is no pipeline {self.pipeline_id!r}.")
        if self.period_from and self.period_to and self.period_from >= self.period_to:
            raise InvalidQuery("to", "The period's end must be after its start.")


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    deals: int
    value: Decimal
    weighted_value: Decimal


@dataclass(frozen=True)
class StageValue:
    pipeline_id: str
    stage: str
    name: str
    probability: int
    deals: int
    by_currency: list[CurrencyTotal]


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


def percentile(ordered: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks of an ascending, non-empty list."""
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def duration_stats(days: list[float]) -> DurationStats:
    if not days:
        return DurationStats(0, None, None, None)
    ordered = sorted(days)
    return DurationStats(
        deals=len(ordered),
        mean_days=math.fsum(ordered) / len(ordered),
        median_days=percentile(ordered, 0.5),
        p90_days=percentile(ordered, 0.9),
    )


def first_day_on_or_after(instant: datetime) -> date:
    """The first calendar day (UTC midnight) at or after an instant."""
    day = instant.date()
    return day if instant.timetz().replace(tzinfo=None) == time(0) else day + timedelta(days=1)


class SalesAnalytics:
    """Answers the core analytics from the deals read model and its pipeline summary."""

    def __init__(self, store: ReadModelStore) -> None:
        self.store = store

    def pipeline_value(self, where: AnalyticsFilter) -> list[StageValue]:
        """Open deals per stage — period filters on the expected close date."""
        where.check()
        clauses, params = self._owner_pipeline(where, owner_column="owner_key")
        if where.period_from is not None:
            clauses.append("expected_close_date >= ?")
            params.append(first_day_on_or_after(where.period_from).isoformat())
        if where.period_to is not None:
            clauses.append("expected_close_date < ?")
            params.append(first_day_on_or_after(where.period_to).isoformat())
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT pipeline_id, stage, currency, SUM(deals) AS deals, "
                "SUM(value_e4) AS value_e4, SUM(weighted_e6) AS weighted_e6 "
                f"FROM {PIPELINE_VALUE_TABLE} WHERE {' AND '.join(clauses)} "
                "GROUP BY pipeline_id, stage, currency ORDER BY currency",
                params,
            )
            rows = cursor.fetchall()
        totals: dict[tuple[str, str], list[CurrencyTotal]] = defaultdict(list)
        for row in rows:
            totals[(row["pipeline_id"], row["stage"])].append(
                CurrencyTotal(
                    currency=row["currency"],
                    deals=int(row["deals"]),
                    value=money_from_e4(int(row["value_e4"])),
                    weighted_value=weighted_from_e6(int(row["weighted_e6"])),
                )
            )
        return [
            StageValue(
                pipeline_id=pipeline.id,
                stage=stage.id,
                name=stage.name,
                probability=stage.probability,
                deals=sum(t.deals for t in totals[(pipeline.id, stage.id)]),
                by_currency=totals[(pipeline.id, stage.id)],
            )
            for pipeline in self._pipelines(where)
            for stage in pipeline.stages
            if stage.kind is StageKind.OPEN
        ]

    def win_rate(self, where: AnalyticsFilter) -> WinRate:
        """won / (won + lost) among deals closed in the period."""
        where.check()
        clauses, params = self._closed_in_period(where)
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT status, COUNT(*) AS deals FROM rm_deals WHERE {' AND '.join(clauses)} "
                "GROUP BY status",
                params,
            )
            counts = {row["status"]: int(row["deals"]) for row in cursor.fetchall()}
        won, lost = counts.get(DealStatus.WON.value, 0), counts.get(DealStatus.LOST.value, 0)
        return WinRate(won=won, lost=lost, win_rate=won / (won + lost) if won + lost else None)

    def sales_cycle(self, where: AnalyticsFilter) -> SalesCycle:
        """close − open time of deals won (and, apart, lost) in the period, in days."""
        where.check()
        clauses, params = self._closed_in_period(where)
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT status, closed_at_us - opened_at_us AS cycle_us FROM rm_deals "
                f"WHERE {' AND '.join(clauses)}",
                params,
            )
            rows = cursor.fetchall()
        days: dict[str, list[float]] = {DealStatus.WON.value: [], DealStatus.LOST.value: []}
        for row in rows:
            days[row["status"]].append(int(row["cycle_us"]) / MICROS_PER_DAY)
        return SalesCycle(
            won=duration_stats(days[DealStatus.WON.value]),
            lost=duration_stats(days[DealStatus.LOST.value]),
        )

    def _pipelines(self, where: AnalyticsFilter) -> list[Pipeline]:
        if where.pipeline_id is not None:
            return [PIPELINES[where.pipeline_id]]
        return list(PIPELINES.values())

    def _owner_pipeline(
        self, where: AnalyticsFilter, owner_column: str = "owner_id"
    ) -> tuple[list[str], list[object]]:
        clauses: list[str] = ["organization_id = ?"]
        params: list[object] = [str(where.organization_id)]
        if where.pipeline_id is not None:
            clauses.append("pipeline_id = ?")
            params.append(where.pipeline_id)
        if where.owner_id is not None:
            clauses.append(f"{owner_column} = ?")
            params.append(where.owner_id)
        return clauses, params

    def _closed_in_period(self, where: AnalyticsFilter) -> tuple[list[str], list[object]]:
        clauses, params = self._owner_pipeline(where)
        clauses.append("status IN (?, ?)")
        params.extend((DealStatus.WON.value, DealStatus.LOST.value))
        clauses.append("closed_at_us >= ?")
        params.append(micros(where.period_from) if where.period_from else -(2**62))
        clauses.append("closed_at_us < ?")
        params.append(micros(where.period_to) if where.period_to else 2**62)
        return clauses, params
