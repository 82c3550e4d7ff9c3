"""The contacts read model: one row per contact."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from aggregates.contact import Contact
from projections.row_projection import ChangesProjection, RowDict
from projections.units import micros, organization_text

CONTACT_COLUMNS_CHANGED = frozenset({"first_name", "last_name", "email"})


class ContactsProjection(ChangesProjection):
    created_by = Contact.ContactCreated
    table = "rm_contacts"
    columns = (
        "id",
        "organization_id",
        "first_name",
        "last_name",
        "email",
        "client_id",
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
        "CREATE INDEX IF NOT EXISTS rm_contacts_by_org_name "
        "ON rm_contacts (organization_id, last_name, id)",
        "CREATE INDEX IF NOT EXISTS rm_contacts_by_org_updated "
        "ON rm_contacts (organization_id, updated_at_us, id)",
        "CREATE INDEX IF NOT EXISTS rm_contacts_by_client "
        "ON rm_contacts (organization_id, client_id)",
    )

    def handles(self, event: DomainEventProtocol[UUID]) -> bool:
        return isinstance(event, Contact.Event)

    @singledispatchmethod
    def changes(self, event: Any, row: RowDict) -> RowDict:
        return {}

    @changes.register
    def _(self, event: Contact.ContactCreated, row: RowDict) -> RowDict:
        return {
            "id": str(event.originator_id),
            "organization_id": organization_text(event.context.organization_id),
            "first_name": event.first_name,
            "last_name": event.last_name,
            "email": event.email,
            "client_id": None,
            "details": event.details,
            "archived": 0,
            "created_by": event.context.actor_id,
            "created_at_us": micros(event.context.occurred_at),
        }

    @changes.register
    def _(self, event: Contact.ContactDetailsChanged, row: RowDict) -> RowDict:
        columns = {k: v for k, v in event.changes.items() if k in CONTACT_COLUMNS_CHANGED}
        details = {k: v for k, v in event.changes.items() if k not in CONTACT_COLUMNS_CHANGED}
        return {**columns, "details": {**row["details"], **details}}

    @changes.register
    def _(self, event: Contact.ContactLinked, row: RowDict) -> RowDict:
        return {"client_id": str(event.client_id)}

    @changes.register
    def _(self, event: Contact.ContactUnlinked, row: RowDict) -> RowDict:
        return {"client_id": None}

    @changes.register
    def _(self, event: Contact.ContactArchived, row: RowDict) -> RowDict:
        return {"archived": 1}

    @changes.register
    def _(self, event: Contact.ContactRestored, row: RowDict) -> RowDict:
        return {"archived": 0}
