"""Administration reads (ADMIN): organization settings, members, tokens and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from crm.identity import CurrentActor
from projections.audit import AuditFilter
from projections.row_projection import RowDict
from projections.units import instant_from_micros, micros
from read_api.dependencies import ConsistentRead, Instant, Reads, as_instant
from read_api.records import RecordNotFound

router = APIRouter(tags=["administration"], dependencies=[ConsistentRead])


class OrganizationPublic(BaseModel):
    id: UUID
    name: str
    base_currency: str
    crm_enabled: bool
    deal_creator_roles: list[str]
    contributor_access: str
    version: int

    @classmethod
    def from_row(cls, row: RowDict) -> OrganizationPublic:
        return cls(**{name: row[name] for name in cls.model_fields})


class MemberPublic(BaseModel):
    user_id: str
    role: str
    added_at: datetime
    added_by: str
    version: int


class TokenPublic(BaseModel):
    id: UUID
    user_id: str
    label: str
    issued_at: datetime
    issued_by: str
    expires_at: datetime | None
    revoked: bool


class AuditEntry(BaseModel):
    record_type: str
    record_id: UUID
    version: int
    event_type: str
    actor_id: str
    occurred_at: datetime = Field(description="Business time")
    recorded_at: datetime
    command_id: UUID
    correlation_id: UUID


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None


@router.get("/organization")
def get_organization(reads: Reads, actor: CurrentActor) -> OrganizationPublic:
    """The caller's organization and its settings."""
    row = reads.administration.organization(actor.organization_id)
    if row is None:
        raise RecordNotFound("organization", actor.organization_id)
    return OrganizationPublic.from_row(row)


@router.get("/users")
def list_members(reads: Reads, actor: CurrentActor) -> list[MemberPublic]:
    """The organization's members and their roles."""
    return [
        MemberPublic(
            user_id=row["user_id"],
            role=row["role"],
            added_by=row["added_by"],
            added_at=instant_from_micros(row["added_at_us"]),
            version=row["version"],
        )
        for row in reads.administration.members(actor.organization_id)
        if not row["removed"]
    ]


@router.get("/tokens")
def list_tokens(reads: Reads, actor: CurrentActor) -> list[TokenPublic]:
    """The organization's API tokens (never their secrets)."""
    return [
        TokenPublic(
            id=row["id"],
            user_id=row["user_id"],
            label=row["label"],
            issued_at=instant_from_micros(row["issued_at_us"]),
            issued_by=row["issued_by"],
            expires_at=None
            if row["expires_at_us"] is None
            else instant_from_micros(row["expires_at_us"]),
            revoked=bool(row["revoked"]),
        )
        for row in reads.administration.tokens(actor.organization_id)
    ]


@router.get("/audit")
def audit(
    reads: Reads,
    actor: CurrentActor,
    actor_id: Annotated[str | None, Query(alias="actor", max_length=200)] = None,
    record_id: Annotated[UUID | None, Query(alias="record")] = None,
    event_type: Annotated[str | None, Query(alias="type", max_length=100)] = None,
    occurred_from: Annotated[Instant | None, Query(alias="from")] = None,
    occurred_to: Annotated[Instant | None, Query(alias="to")] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """Every change, oldest first: who did what to which record, when (business and recorded)."""
    start, end = as_instant(occurred_from), as_instant(occurred_to)
    where = AuditFilter(
        organization_id=actor.organization_id,
        actor_id=actor_id,
        record_id=record_id,
        event_type=event_type,
        occurred_from_us=None if start is None else micros(start),
        occurred_to_us=None if end is None else micros(end),
    )
    page = reads.audit.page(where, cursor, limit)
    return AuditPage(
        items=[
            AuditEntry(
                record_type=row["record_type"],
                record_id=row["record_id"],
                version=row["version"],
                event_type=row["event_type"],
                actor_id=row["actor_id"],
                occurred_at=instant_from_micros(row["occurred_at_us"]),
                recorded_at=instant_from_micros(row["recorded_at_us"]),
                command_id=row["command_id"],
                correlation_id=row["correlation_id"],
            )
            for row in page.rows
        ],
        next_cursor=page.next_cursor,
    )
