"""Read endpoints of pipelines and exchange rates, from their read models."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from crm.identity import CurrentActor
from projections.row_projection import RowDict
from projections.units import instant_from_micros
from read_api.dependencies import ConsistentRead, Reads
from read_api.records import RecordNotFound

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such pipeline"}}
router = APIRouter(tags=["pipelines: reads"], dependencies=[ConsistentRead], responses=NOT_FOUND)


class StagePublic(BaseModel):
    id: str
    name: str
    probability: int
    kind: str


class PipelinePublic(BaseModel):
    id: str = Field(description="The pipeline's id, as deals name it (pipeline_id).")
    record_id: UUID = Field(description="The pipeline record's id (its history, the audit).")
    name: str
    stages: list[StagePublic] = Field(description="In pipeline order.")
    version: int

    @classmethod
    def from_row(cls, row: RowDict) -> PipelinePublic:
        return cls(
            id=row["pipeline_id"],
            record_id=row["id"],
            name=row["name"],
            stages=[StagePublic(**stage) for stage in row["stages"]],
            version=row["version"],
        )


class ExchangeRatePublic(BaseModel):
    currency: str
    base_currency: str
    rate_to_base: Decimal = Field(description="One unit of the currency in the base currency.")
    effective_from: date
    set_at: datetime = Field(description="Business time")
    set_by: str


class ExchangeRateList(BaseModel):
    base_currency: str | None = Field(description="The organization's base currency now.")
    items: list[ExchangeRatePublic]


@router.get("/pipelines")
def list_pipelines(reads: Reads, actor: CurrentActor) -> list[PipelinePublic]:
    """The organization's pipelines (the default one first) and their stages in order."""
    return [
        PipelinePublic.from_row(row) for row in reads.pipelines.pipelines(actor.organization_id)
    ]


@router.get("/pipelines/{pipeline_id}")
def get_pipeline(
    pipeline_id: Annotated[str, Path(min_length=1, max_length=100)],
    reads: Reads,
    actor: CurrentActor,
    response: Response,
) -> PipelinePublic:
    """One pipeline and its stages in order (ETag: its version)."""
    row = reads.pipelines.pipeline(actor.organization_id, pipeline_id)
    if row is None:
        raise RecordNotFound("pipeline", pipeline_id)
    response.headers["ETag"] = f'"{row["version"]}"'
    return PipelinePublic.from_row(row)


@router.get("/exchange-rates")
def list_exchange_rates(
    reads: Reads,
    actor: CurrentActor,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
) -> ExchangeRateList:
    """The exchange rates set, by currency and effective date."""
    organization = reads.administration.organization(actor.organization_id)
    return ExchangeRateList(
        base_currency=None if organization is None else organization["base_currency"],
        items=[
            ExchangeRatePublic(
                currency=row["currency"],
                base_currency=row["base_currency"],
                rate_to_base=Decimal(row["rate_to_base"]),
                effective_from=date.fromisoformat(row["effective_from"]),
                set_at=instant_from_micros(row["set_at_us"]),
                set_by=row["set_by"],
            )
            for row in reads.pipelines.exchange_rates(actor.organization_id, currency)
        ],
    )
