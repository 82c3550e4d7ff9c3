"""Read endpoints of clients, contacts and deals: lists, details, history, past states."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from crm.identity import CurrentActor
from projections.row_projection import RowDict
from read_api.dependencies import ConsistentRead, Instant, Pages, Reads, as_instant
from read_api.schemas import (
    ClientList,
    ClientPublic,
    ContactList,
    ContactPublic,
    DealList,
    DealPublic,
    History,
    HistoryEntryPublic,
)


class RecordNotFound(Exception):
    def __init__(self, kind: str, record_id: UUID | str) -> None:
        super().__init__(f"There is no {kind} {record_id}.")
        self.kind = kind
        self.record_id = record_id


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such record"}}
clients = APIRouter(prefix="/clients", tags=["clients: reads"], responses=NOT_FOUND)
contacts = APIRouter(prefix="/contacts", tags=["contacts: reads"], responses=NOT_FOUND)
deals = APIRouter(prefix="/deals", tags=["deals: reads"], responses=NOT_FOUND)


@clients.get("", dependencies=[ConsistentRead])
def list_clients(
    reads: Reads,
    actor: CurrentActor,
    pages: Pages,
    sort: Annotated[str, Query(description="name, updated_at, created_at; -x: desc")] = "name",
    status: Annotated[str | None, Query(max_length=50)] = None,
    category: Annotated[str | None, Query(max_length=50)] = None,
    name: Annotated[str | None, Query(max_length=200, description="Name starts with")] = None,
) -> ClientList:
    """List clients, filtered, sorted and paged by cursor."""
    page = reads.records.clients(
        actor.organization_id, pages.sorted_by(sort), status, category, name
    )
    return ClientList(
        items=[ClientPublic.from_row(r) for r in page.rows], next_cursor=page.next_cursor
    )


@contacts.get("", dependencies=[ConsistentRead])
def list_contacts(
    reads: Reads,
    actor: CurrentActor,
    pages: Pages,
    sort: Annotated[
        str, Query(description="last_name, email, updated_at, created_at; -x: desc")
    ] = "last_name",
    client_id: UUID | None = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    name: Annotated[str | None, Query(max_length=200, description="Last name starts with")] = None,
) -> ContactList:
    """List contacts, filtered, sorted and paged by cursor."""
    page = reads.records.contacts(
        actor.organization_id, pages.sorted_by(sort), client_id, email, name
    )
    return ContactList(
        items=[ContactPublic.from_row(r) for r in page.rows], next_cursor=page.next_cursor
    )


@deals.get("", dependencies=[ConsistentRead])
def list_deals(
    reads: Reads,
    actor: CurrentActor,
    pages: Pages,
    sort: Annotated[
        str, Query(description="name, value, expected_close_date, opened_at, updated_at; -x: desc")
    ] = "-updated_at",
    status: Annotated[str | None, Query(pattern="^(open|won|lost)$")] = None,
    stage: Annotated[str | None, Query(max_length=100)] = None,
    pipeline: Annotated[str | None, Query(max_length=100)] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    client_id: UUID | None = None,
) -> DealList:
    """List deals, filtered, sorted and paged by cursor."""
    page = reads.records.deals(
        actor.organization_id, pages.sorted_by(sort), status, stage, pipeline, owner, client_id
    )
    return DealList(items=[DealPublic.from_row(r) for r in page.rows], next_cursor=page.next_cursor)


def add_record_reads(
    router: APIRouter,
    kind: str,
    public: type[ClientPublic | ContactPublic | DealPublic],
    find: Callable[[Reads, UUID, UUID, datetime | None], RowDict | None],
) -> None:
    """The detail, history and past-state endpoints every record kind has."""

    @router.get(
        "/{record_id}",
        dependencies=[ConsistentRead],
        response_model=public,
        name=f"get_{kind}",
        summary=f"Get a {kind}",
    )
    def get_record(
        record_id: UUID,
        reads: Reads,
        actor: CurrentActor,
        response: Response,
        as_of: Annotated[
            Instant | None,
            Query(description="The record as it stood at this business instant (or date)"),
        ] = None,
    ) -> BaseModel:
        row = find(reads, actor.organization_id, record_id, as_instant(as_of))
        if row is None:
            raise RecordNotFound(kind, record_id)
        response.headers["ETag"] = f'"{row["version"]}"'
        return public.from_row(row)

    @router.get(
        "/{record_id}/history",
        response_model=History,
        name=f"get_{kind}_history",
        summary=f"A {kind}'s history: who changed what, when",
    )
    def get_history(record_id: UUID, reads: Reads, actor: CurrentActor) -> History:
        entries = reads.history.entries(kind, actor.organization_id, record_id)
        if entries is None:
            raise RecordNotFound(kind, record_id)
        return History(
            id=record_id,
            entries=[HistoryEntryPublic.model_validate(e, from_attributes=True) for e in entries],
        )

    @router.get(
        "/{record_id}/state",
        response_model=public,
        name=f"get_{kind}_state",
        summary=f"A {kind} as it stood at a past version or business time",
    )
    def get_state(
        record_id: UUID,
        reads: Reads,
        actor: CurrentActor,
        version: Annotated[int | None, Query(ge=1, le=2**31)] = None,
        at: Annotated[Instant | None, Query(description="A business instant (or date)")] = None,
    ) -> BaseModel:
        row = reads.history.state(kind, actor.organization_id, record_id, version, as_instant(at))
        if row is None:
            raise RecordNotFound(kind, record_id)
        return public.from_row(row)


add_record_reads(clients, "client", ClientPublic, lambda r, o, i, t: r.records.client(o, i, t))
add_record_reads(contacts, "contact", ContactPublic, lambda r, o, i, t: r.records.contact(o, i, t))
add_record_reads(deals, "deal", DealPublic, lambda r, o, i, t: r.records.deal(o, i, t))

routers = (clients, contacts, deals)
