"""The clients read model: one row per client."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from aggregates.client import Client
from event_store.read_model_store import SqlCursor
from projections.closed_summary import move_client_categories
from projections.row_projection import ChangesProjection, RowDict
from projections.units import micros, organization_text


class ClientsProjection(ChangesProjection):
    created_by = Client.ClientRegistered
    table = "rm_clients"
    columns = (
        "id",
        "organization_id",
        "name",
        "category",
        "status",
        "primary_contact_id",
        "details",
        "archived",
        "created_by",
        "created_at_us",
        "version",
        "updated_at_us",
        "recorded_at_us",
    )
    keeps_history = True
    json_columns = frozenset({"details"})
    column_types: ClassVar[dict[str, str]] = {
        "archived": "INTEGER",
        "created_at_us": "BIGINT",
        "version": "INTEGER",
        "updated_at_us": "BIGINT",
        "recorded_at_us": "BIGINT",
    }
    indexes = (
        "CREATE INDEX IF NOT EXISTS rm_clients_by_org_name "
        "ON rm_clients (organization_id, name, id)",
        "CREATE INDEX IF NOT EXISTS rm_clients_by_org_updated "
        "ON rm_clients (organization_id, updated_at_us, id)",
    )

    def handles(self, event: DomainEventProtocol[UUID]) -> bool:
        return isinstance(event, Client.Event)

    def after_batch(
        self, cursor: SqlCursor, before: dict[str, RowDict | None], after: dict[str, RowDict]
    ) -> None:
        """Move the closed deals of each re-categorized client in the closed deals' summary
        (before the deals' own changes of the batch, which read the categories now). A bulk
        load derives the summary at its end."""
        if not cursor.derived_at_end:
            move_client_categories(cursor, before, after)

    @singledispatchmethod
    def changes(self, event: Any, row: RowDict) -> RowDict:
        return {}

    @changes.register
    def _(self, event: Client.ClientRegistered, row: RowDict) -> RowDict:
        return {
            "id": str(event.originator_id),
            "organization_id": organization_text(event.context.organization_id),
            "name": event.name,
            "category": event.category,
            "status": event.status,
            "primary_contact_id": None,
            "details": event.details,
            "archived": 0,
            "created_by": event.context.actor_id,
            "created_at_us": micros(event.context.occurred_at),
        }

    @changes.register
    def _(self, event: Client.ClientDetailsChanged, row: RowDict) -> RowDict:
        details = {key: value for key, value in event.changes.items() if key != "name"}
        return {
            "name": event.changes.get("name", row["name"]),
            "details": {**row["details"], **details},
        }

    @changes.register
    def _(self, event: Client.ClientStatusChanged, row: RowDict) -> RowDict:
        return {"status": event.status, "category": event.category}

    @changes.register
    def _(self, event: Client.PrimaryContactSet, row: RowDict) -> RowDict:
        return {"primary_contact_id": str(event.contact_id)}

    @changes.register
    def _(self, event: Client.ClientArchived, row: RowDict) -> RowDict:
        return {"archived": 1}

    @changes.register
    def _(self, event: Client.ClientRestored, row: RowDict) -> RowDict:
        return {"archived": 0}
