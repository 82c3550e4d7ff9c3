"""Client: a company the organization works with."""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from aggregates.base import CrmAggregate
from aggregates.context import EventContext
from aggregates.errors import InvalidValue, RuleBroken


class ClientCategory(StrEnum):
    ACTIVE_CLIENT = "active_client"
    PROSPECT = "prospect"
    PAST_CLIENT = "past_client"
    PARTNER = "partner"
    SUPPLIER = "supplier"


class ClientStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    PROSPECT = "prospect"


class Client(CrmAggregate):
    """A company. Its details are plain data validated at the command edge; the aggregate
    keeps only what its rules decide on."""

    class ClientRegistered(CrmAggregate.Created):
        name: str
        category: str
        status: str
        details: dict[str, Any]

    class ClientDetailsChanged(CrmAggregate.Event):
        changes: dict[str, Any]

    class ClientStatusChanged(CrmAggregate.Event):
        status: str
        category: str

    class PrimaryContactSet(CrmAggregate.Event):
        contact_id: UUID

    class ClientArchived(CrmAggregate.Event):
        pass

    class ClientRestored(CrmAggregate.Event):
        pass

    @event(ClientRegistered)
    def __init__(
        self, name: str, category: str, status: str, details: dict[str, Any], context: EventContext
    ) -> None:
        self.status = status
        self.category = category
        self.primary_contact_id: UUID | None = None

    def change_details(self, changes: dict[str, Any], context: EventContext) -> None:
        """Change the given fields (name and details); the others keep their value."""
        self._check_changeable(context)
        if not changes:
            raise InvalidValue("body", "Name at least one field to change.")
        self._details_changed(changes=changes, context=context)

    def change_status(self, status: str, category: str, context: EventContext) -> None:
        self._check_changeable(context)
        if (status, category) == (self.status, self.category):
            raise RuleBroken(
                f"Client {self.id} already has status {status} and category {category}."
            )
        self._status_changed(status=status, category=category, context=context)

    def set_primary_contact(self, contact_id: UUID, context: EventContext) -> None:
        """Set the primary contact; the caller has checked it is linked to this client."""
        self._check_changeable(context)
        if contact_id == self.primary_contact_id:
            raise RuleBroken(f"Contact {contact_id} is already the primary contact.")
        self._primary_contact_set(contact_id=contact_id, context=context)

    def archive(self, context: EventContext) -> None:
        self._check_changeable(context)
        self._archived(context=context)

    def restore(self, context: EventContext) -> None:
        self.check_in_sequence(context)
        if not self.archived:
            raise RuleBroken(f"Client {self.id} is not archived.")
        self._restored(context=context)

    def _check_changeable(self, context: EventContext) -> None:
        self.check_not_archived()
        self.check_in_sequence(context)

    @event(ClientDetailsChanged)
    def _details_changed(self, changes: dict[str, Any], context: EventContext) -> None:
        pass  # no rule depends on details; the read model merges the changes

    @event(ClientStatusChanged)
    def _status_changed(self, status: str, category: str, context: EventContext) -> None:
        self.status = status
        self.category = category

    @event(PrimaryContactSet)
    def _primary_contact_set(self, contact_id: UUID, context: EventContext) -> None:
        self.primary_contact_id = contact_id

    @event(ClientArchived)
    def _archived(self, context: EventContext) -> None:
        self.archived = True

    @event(ClientRestored)
    def _restored(self, context: EventContext) -> None:
        self.archived = False
