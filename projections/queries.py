"""Queries over the record read models: details and lists of clients, contacts and deals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from event_store.read_model_store import ReadModelStore
from projections.clients import ClientsProjection
from projections.contacts import ContactsProjection
from projections.deals import DealsProjection
from projections.listing import Page, Query, page, parse_sort
from projections.row_projection import RowDict, RowProjection
from projections.units import micros

CLIENT_SORTS = {"name": "name", "updated_at": "updated_at_us", "created_at": "created_at_us"}
CONTACT_SORTS = {
    "last_name": "last_name",
    "email": "email",
    "updated_at": "updated_at_us",
    "created_at": "created_at_us",
}
DEAL_SORTS = {
    "name": "name",
    "value": "value_e4",
    "expected_close_date": "expected_close_date",
    "opened_at": "opened_at_us",
    "updated_at": "updated_at_us",
}


@dataclass(frozen=True)
class ListParams:
    sort: str
    cursor: str | None
    limit: int
    include_archived: bool = False


class RecordQueries:
    """Reads the client, contact and deal rows of one organization."""

    def __init__(self, store: ReadModelStore) -> None:
        self.store = store
        self.clients_model = ClientsProjection()
        self.contacts_model = ContactsProjection()
        self.deals_model = DealsProjection()

    def client(
        self, organization_id: UUID, client_id: UUID, as_of: datetime | None = None
    ) -> RowDict | None:
        return self._one(self.clients_model, organization_id, client_id, as_of)

    def contact(
        self, organization_id: UUID, contact_id: UUID, as_of: datetime | None = None
    ) -> RowDict | None:
        return self._one(self.contacts_model, organization_id, contact_id, as_of)

    def deal(
        self, organization_id: UUID, deal_id: UUID, as_of: datetime | None = None
    ) -> RowDict | None:
        return self._one(self.deals_model, organization_id, deal_id, as_of)

    def clients(
        self,
        organization_id: UUID,
        params: ListParams,
        status: str | None = None,
        category: str | None = None,
        name_prefix: str | None = None,
    ) -> Page:
        query = (
            self._base(organization_id, params)
            .where_equal("status", status)
            .where_equal("category", category)
        )
        if name_prefix:
            query.where("substr(lower(name), 1, ?) = ?", len(name_prefix), name_prefix.lower())
        return self._page(self.clients_model, query, params, CLIENT_SORTS)

    def contacts(
        self,
        organization_id: UUID,
        params: ListParams,
        client_id: UUID | None = None,
        email: str | None = None,
        name_prefix: str | None = None,
    ) -> Page:
        query = (
            self._base(organization_id, params)
            .where_equal("client_id", None if client_id is None else str(client_id))
            .where_equal("email", None if email is None else email.strip().casefold())
        )
        if name_prefix:
            query.where("substr(lower(last_name), 1, ?) = ?", len(name_prefix), name_prefix.lower())
        return self._page(self.contacts_model, query, params, CONTACT_SORTS)

    def deals(
        self,
        organization_id: UUID,
        params: ListParams,
        status: str | None = None,
        stage: str | None = None,
        pipeline_id: str | None = None,
        owner_id: str | None = None,
        client_id: UUID | None = None,
    ) -> Page:
        query = (
            self._base(organization_id, params)
            .where_equal("status", status)
            .where_equal("stage", stage)
            .where_equal("pipeline_id", pipeline_id)
            .where_equal("owner_id", owner_id)
            .where_equal("client_id", None if client_id is None else str(client_id))
        )
        return self._page(self.deals_model, query, params, DEAL_SORTS)

    def _base(self, organization_id: UUID, params: ListParams) -> Query:
        query = Query(str(organization_id))
        return query if params.include_archived else query.where("archived = 0")

    def _page(
        self, model: RowProjection, query: Query, params: ListParams, sorts: dict[str, str]
    ) -> Page:
        column, descending = parse_sort(params.sort, sorts)
        with self.store.transaction(commit=False) as cursor:
            return page(cursor, model, query, column, descending, params.cursor, params.limit)

    def _one(
        self,
        model: RowProjection,
        organization_id: UUID,
        record_id: UUID,
        as_of: datetime | None = None,
    ) -> RowDict | None:
        """The record now, or as it stood at business instant ``as_of``."""
        with self.store.transaction(commit=False) as cursor:
            if as_of is not None:
                return model.load_as_of(cursor, str(organization_id), str(record_id), micros(as_of))
            cursor.execute(
                f"SELECT * FROM {model.table} WHERE id = ? AND organization_id = ?",
                [str(record_id), str(organization_id)],
            )
            row = cursor.fetchone()
        return None if row is None else model.decode(row)
