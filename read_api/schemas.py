"""What the read API answers: one public schema per use, built from read-model rows."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from projections.row_projection import RowDict
from projections.units import instant_from_micros, money_from_e4, weighted_from_e6


def _instant(value: int | None) -> datetime | None:
    return None if value is None else instant_from_micros(value)


class RecordBase(BaseModel):
    id: UUID
    version: int = Field(description="The ETag to send in If-Match to change this record.")
    archived: bool
    updated_at: datetime = Field(description="Business time of the record's latest event.")
    recorded_at: datetime = Field(description="When the latest event was stored.")


class ClientPublic(RecordBase):
    name: str
    category: str
    status: str
    primary_contact_id: UUID | None
    created_at: datetime
    created_by: str
    address: dict[str, Any] | None = None
    phones: list[dict[str, Any]] = []
    emails: list[str] = []
    website: str | None = None
    tax_id: str | None = None
    notes: str | None = None
    custom_fields: dict[str, Any] = {}

    @classmethod
    def from_row(cls, row: RowDict) -> ClientPublic:
        return cls(
            **row["details"],
            id=row["id"],
            name=row["name"],
            category=row["category"],
            status=row["status"],
            primary_contact_id=row["primary_contact_id"],
            archived=bool(row["archived"]),
            version=row["version"],
            created_by=row["created_by"],
            created_at=instant_from_micros(row["created_at_us"]),
            updated_at=instant_from_micros(row["updated_at_us"]),
            recorded_at=instant_from_micros(row["recorded_at_us"]),
        )


class ContactPublic(RecordBase):
    first_name: str
    last_name: str
    email: str
    client_id: UUID | None
    created_at: datetime
    created_by: str
    job_title: str | None = None
    phones: list[dict[str, Any]] = []
    department: str | None = None
    notes: str | None = None
    social_profiles: list[dict[str, Any]] = []
    category: str | None = None
    communication_preferences: dict[str, Any] = {}
    custom_fields: dict[str, Any] = {}

    @classmethod
    def from_row(cls, row: RowDict) -> ContactPublic:
        return cls(
            **row["details"],
            id=row["id"],
            first_name=row["first_name"],
            last_name=row["last_name"],
            email=row["email"],
            client_id=row["client_id"],
            archived=bool(row["archived"]),
            version=row["version"],
            created_by=row["created_by"],
            created_at=instant_from_micros(row["created_at_us"]),
            updated_at=instant_from_micros(row["updated_at_us"]),
            recorded_at=instant_from_micros(row["recorded_at_us"]),
        )


class DealPublic(RecordBase):
    name: str
    client_id: UUID
    value: Decimal
    currency: str
    weighted_value: Decimal = Field(description="value × probability / 100")
    expected_close_date: date
    pipeline_id: str
    stage: str
    probability: int
    status: str
    owner_id: str | None
    source: str | None
    competitor: str | None
    notes: str | None
    stakeholder_contact_ids: list[UUID]
    stakeholder_user_ids: list[str]
    lost_reason: str | None
    lost_competitor: str | None
    opened_at: datetime
    closed_at: datetime | None
    stage_entered_at: datetime
    created_by: str

    @classmethod
    def from_row(cls, row: RowDict) -> DealPublic:
        return cls(
            id=row["id"],
            name=row["name"],
            client_id=row["client_id"],
            value=money_from_e4(row["value_e4"]),
            currency=row["currency"],
            weighted_value=weighted_from_e6(row["value_e4"] * row["probability"]),
            expected_close_date=date.fromisoformat(row["expected_close_date"]),
            pipeline_id=row["pipeline_id"],
            stage=row["stage"],
            probability=row["probability"],
            status=row["status"],
            owner_id=row["owner_id"],
            source=row["source"],
            competitor=row["competitor"],
            notes=row["notes"],
            stakeholder_contact_ids=row["stakeholder_contact_ids"],
            stakeholder_user_ids=row["stakeholder_user_ids"],
            lost_reason=row["lost_reason"],
            lost_competitor=row["lost_competitor"],
            opened_at=instant_from_micros(row["opened_at_us"]),
            closed_at=_instant(row["closed_at_us"]),
            stage_entered_at=instant_from_micros(row["stage_entered_at_us"]),
            archived=bool(row["archived"]),
            version=row["version"],
            created_by=row["created_by"],
            updated_at=instant_from_micros(row["updated_at_us"]),
            recorded_at=instant_from_micros(row["recorded_at_us"]),
        )


class ClientList(BaseModel):
    items: list[ClientPublic]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null: last.")


class ContactList(BaseModel):
    items: list[ContactPublic]
    next_cursor: str | None


class DealList(BaseModel):
    items: list[DealPublic]
    next_cursor: str | None


class HistoryEntryPublic(BaseModel):
    version: int
    type: str = Field(description="The event, e.g. StageChanged, DealWon.")
    actor_id: str
    occurred_at: datetime = Field(description="Business time.")
    recorded_at: datetime
    command_id: UUID
    correlation_id: UUID
    changes: dict[str, Any]


class History(BaseModel):
    id: UUID
    entries: list[HistoryEntryPublic]
