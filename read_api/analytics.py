"""Sales analytics endpoints (SPEC §5): every figure now or ``as_of`` any business instant."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from crm.identity import CurrentActor
from projections.analytics import (
    AnalyticsFilter,
    AverageDealSize,
    Breakdown,
    Conversion,
    ForecastMonth,
    SalesCycle,
    SalespersonFigures,
    StageTime,
    StageValue,
    Visit,
    WinRate,
)
from projections.listing import InvalidQuery
from read_api.dependencies import ConsistentRead, Instant, Reads, as_instant, prepared_json

router = APIRouter(prefix="/analytics", tags=["analytics"], dependencies=[ConsistentRead])
MAX_FORECAST_POINTS = 60


async def analytics_filter(  # no I/O: async keeps it off the thread pool
    actor: CurrentActor,
    pipeline: Annotated[str | None, Query(max_length=100)] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    period_from: Annotated[
        Instant | None, Query(alias="from", description="Period start (inclusive)")
    ] = None,
    period_to: Annotated[
        Instant | None, Query(alias="to", description="Period end (exclusive)")
    ] = None,
    as_of: Annotated[
        Instant | None,
        Query(description="The figures as they stood at this business instant (or date)"),
    ] = None,
) -> AnalyticsFilter:
    return AnalyticsFilter(
        organization_id=actor.organization_id,
        pipeline_id=pipeline,
        owner_id=owner,
        period_from=as_instant(period_from),
        period_to=as_instant(period_to),
        as_of=as_instant(as_of),
    )


Filter = Annotated[AnalyticsFilter, Depends(analytics_filter)]


class PipelineValue(BaseModel):
    stages: list[StageValue] = Field(
        description="Open deals per stage; the period filters on expected close date."
    )


class Forecast(BaseModel):
    months: list[ForecastMonth]


class ForecastPoint(BaseModel):
    as_of: str
    forecast: ForecastMonth | None


class ForecastHistory(BaseModel):
    month: str
    points: list[ForecastPoint]


class WinLoss(BaseModel):
    by: str
    groups: list[Breakdown]


class TimeInStage(BaseModel):
    stages: list[StageTime]


class Visits(BaseModel):
    visits: list[Visit]


class Salespeople(BaseModel):
    salespeople: list[SalespersonFigures] = Field(
        description="interactions_logged is null: interactions are not recorded yet."
    )


@router.get("/pipeline-value")
def pipeline_value(reads: Reads, where: Filter) -> PipelineValue:
    """Open deals per stage: count, Σ value and Σ value × probability / 100, per currency."""
    return PipelineValue(stages=reads.analytics.pipeline_value(where))


@router.get("/win-rate")
def win_rate(reads: Reads, where: Filter) -> WinRate:
    """won / (won + lost) among deals closed in the period."""
    return reads.analytics.win_rate(where)


@router.get("/average-deal-size")
def average_deal_size(reads: Reads, where: Filter) -> AverageDealSize:
    """Mean value of the deals won in the period, per currency."""
    return reads.analytics.average_deal_size(where)


@router.get("/sales-cycle")
def sales_cycle(reads: Reads, where: Filter) -> SalesCycle:
    """Days from open to close of deals won (and, apart, lost) in the period."""
    return reads.analytics.sales_cycle(where)


@router.get("/conversion")
def conversion(reads: Reads, where: Filter) -> Conversion:
    """Stage conversion from observed transitions, and the from → to transition counts."""
    return reads.analytics.conversion(where)


@router.get("/time-in-stage")
def time_in_stage(reads: Reads, where: Filter) -> TimeInStage:
    """Mean and median days per visit of each stage entered in the period."""
    return TimeInStage(stages=reads.analytics.time_in_stage(where))


@router.get("/time-in-stage/visits", response_model=Visits)
def stage_visits(
    reads: Reads,
    where: Filter,
    response: Response,
    deal_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    """Every visit per deal and stage (re-entries are separate visits)."""
    found = reads.analytics.visits(where, deal_id, limit)
    return prepared_json(Visits.model_construct(visits=found), response)


@router.get("/rotting", response_model=Visits)
def rotting(
    reads: Reads,
    where: Filter,
    response: Response,
    days: Annotated[float, Query(gt=0, le=36_500, description="Threshold for every stage")] = 30,
    stage_days: Annotated[
        list[str] | None,
        Query(description="Per-stage thresholds overriding days, e.g. stage_days=lead:14"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    """Open deals stuck in their stage longer than the stage's threshold, longest first
    (the first ``limit``)."""
    thresholds = per_stage_thresholds(reads, where, days, stage_days or [])
    found = reads.analytics.rotting(where, thresholds, limit)
    return prepared_json(Visits.model_construct(visits=found), response)


@router.get("/forecast")
def forecast(reads: Reads, where: Filter) -> Forecast:
    """Open deals by expected close month (Σ value, Σ weighted) beside the deals won so far."""
    return Forecast(months=reads.analytics.forecast(where))


@router.get("/forecast/history")
def forecast_history(
    reads: Reads,
    where: Filter,
    month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")],
    step_days: Annotated[int, Query(ge=1, le=366)] = 7,
) -> ForecastHistory:
    """How the forecast for one month changed: its figures as of every step in [from, to)."""
    if where.period_from is None or where.period_to is None:
        raise InvalidQuery("from", "Give the span to follow the forecast over: from and to.")
    if where.period_from >= where.period_to:
        raise InvalidQuery("to", "The period's end must be after its start.")
    step = timedelta(days=step_days)
    if (where.period_to - where.period_from) / step > MAX_FORECAST_POINTS:
        raise InvalidQuery("step_days", f"At most {MAX_FORECAST_POINTS} points: widen the step.")
    count = -(-(where.period_to - where.period_from) // step)  # instants from + k·step < to
    figures = reads.analytics.forecast_history(
        where, date.fromisoformat(f"{month}-01"), where.period_from, step, count
    )
    points = [
        ForecastPoint(as_of=(where.period_from + k * step).isoformat(), forecast=forecast)
        for k, forecast in enumerate(figures)
    ]
    return ForecastHistory(month=month, points=points)


@router.get("/win-loss")
def win_loss(
    reads: Reads,
    where: Filter,
    by: Literal["lost_reason", "competitor", "source", "owner", "client_category"] = "lost_reason",
) -> WinLoss:
    """Won and lost deals closed in the period, by lost reason, competitor, source, owner or
    client category."""
    return WinLoss(by=by, groups=reads.analytics.win_loss(where, by))


@router.get("/salespeople")
def salespeople(reads: Reads, where: Filter) -> Salespeople:
    """Per owner: won, lost, win rate, revenue won, mean cycle and open pipeline."""
    return Salespeople(salespeople=reads.analytics.salesperson_performance(where))


def per_stage_thresholds(
    reads: Reads, where: AnalyticsFilter, days: float, overrides: list[str]
) -> dict[str, float]:
    thresholds: dict[str, float] = {}
    for pipeline in reads.analytics.pipelines_of(where.organization_id).values():
        for known in pipeline.stages:
            thresholds[known.id] = days
    for item in overrides:
        stage, _, value = item.partition(":")
        try:
            limit = float(value)
        except ValueError:
            limit = -1
        if stage not in thresholds or not 0 < limit <= 36_500:
            raise InvalidQuery("stage_days", f"{item!r} is not stage:days for a known stage.")
        thresholds[stage] = limit
    return thresholds
