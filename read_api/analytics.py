"""Sales analytics endpoints: pipeline value by stage, win rate, sales-cycle duration."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from crm.identity import CurrentActor
from projections.analytics import AnalyticsFilter
from read_api.dependencies import ConsistentRead, Instant, Reads, as_instant

router = APIRouter(prefix="/analytics", tags=["analytics"], dependencies=[ConsistentRead])


def analytics_filter(
    actor: CurrentActor,
    pipeline: Annotated[str | None, Query(max_length=100)] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    period_from: Annotated[
        Instant | None, Query(alias="from", description="Period start (inclusive)")
    ] = None,
    period_to: Annotated[
        Instant | None, Query(alias="to", description="Period end (exclusive)")
    ] = None,
) -> AnalyticsFilter:
    return AnalyticsFilter(
        organization_id=actor.organization_id,
        pipeline_id=pipeline,
        owner_id=owner,
        period_from=as_instant(period_from),
        period_to=as_instant(period_to),
    )


Filter = Annotated[AnalyticsFilter, Depends(analytics_filter)]


class CurrencyTotalPublic(BaseModel):
    currency: str
    deals: int
    value: Decimal
    weighted_value: Decimal


class StageValuePublic(BaseModel):
    pipeline_id: str
    stage: str
    name: str
    probability: int
    deals: int
    by_currency: list[CurrencyTotalPublic]


class PipelineValue(BaseModel):
    stages: list[StageValuePublic] = Field(
        description="Open deals per stage; the period filters on expected close date."
    )


class WinRatePublic(BaseModel):
    won: int
    lost: int
    win_rate: float | None = Field(description="won / (won + lost); null when none closed")


class DurationStatsPublic(BaseModel):
    deals: int
    mean_days: float | None
    median_days: float | None
    p90_days: float | None


class SalesCyclePublic(BaseModel):
    won: DurationStatsPublic
    lost: DurationStatsPublic


@router.get("/pipeline-value")
def pipeline_value(reads: Reads, where: Filter) -> PipelineValue:
    """Open deals per stage: count, Σ value and Σ value × probability / 100, per currency."""
    stages = reads.analytics.pipeline_value(where)
    return PipelineValue(
        stages=[StageValuePublic.model_validate(s, from_attributes=True) for s in stages]
    )


@router.get("/win-rate")
def win_rate(reads: Reads, where: Filter) -> WinRatePublic:
    """won / (won + lost) among deals closed in the period."""
    return WinRatePublic.model_validate(reads.analytics.win_rate(where), from_attributes=True)


@router.get("/sales-cycle")
def sales_cycle(reads: Reads, where: Filter) -> SalesCyclePublic:
    """Days from open to close of deals won (and, apart, lost) in the period."""
    return SalesCyclePublic.model_validate(reads.analytics.sales_cycle(where), from_attributes=True)
