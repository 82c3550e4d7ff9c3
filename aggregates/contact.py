"""Contact: a person, optionally linked to one client."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from aggregates.base import CrmAggregate
from aggregates.context import EventContext
from aggregates.errors import InvalidValue, RuleBroken


class Contact(CrmAggregate):
    """A person. The email is unique in the organization (see :mod:`aggregates.email_claim`)."""

    class ContactCreated(CrmAggregate.Created):
        first_name: str
        last_name: str
        email: str
        details: dict[str, Any]

    class ContactDetailsChanged(CrmAggregate.Event):
        changes: dict[str, Any]

    class ContactLinked(CrmAggregate.Event):
        client_id: UUID

    class ContactUnlinked(CrmAggregate.Event):
        client_id: UUID

    class ContactArchived(CrmAggregate.Event):
        pass

    class ContactRestored(CrmAggregate.Event):
        pass

    @event(ContactCreated)
    def __init__(
        self,
        first_name: str,
        last_name: str,
        email: str,
        details: dict[str, Any],
        context: EventContext,
    ) -> None:
        self.email = email
        self.client_id: UUID | None = None

    def change_details(self, changes: dict[str, Any], context: EventContext) -> None:
        """Change the given fields; a new email must have been claimed by the caller."""
        self._check_changeable(context)
        if not changes:
            raise InvalidValue("body", "Name at least one field to change.")
        self._details_changed(changes=changes, context=context)

    def link_to(self, client_id: UUID, context: EventContext) -> None:
        self._check_changeable(context)
        if self.client_id == client_id:
            raise RuleBroken(f"Contact {self.id} is already linked to client {client_id}.")
        if self.client_id is not None:
            raise RuleBroken(
                f"Contact {self.id} is linked to client {self.client_id}; unlink it first."
            )
        self._linked(client_id=client_id, context=context)

    def unlink(self, context: EventContext) -> UUID:
        """Unlink from the current client and return that client's id."""
        self._check_changeable(context)
        if self.client_id is None:
            raise RuleBroken(f"Contact {self.id} is not linked to a client.")
        client_id = self.client_id
        self._unlinked(client_id=client_id, context=context)
        return client_id

    def archive(self, context: EventContext) -> None:
        self._check_changeable(context)
        self._archived(context=context)

    def restore(self, context: EventContext) -> None:
        self.check_in_sequence(context)
        if not self.archived:
            raise RuleBroken(f"Contact {self.id} is not archived.")
        self._restored(context=context)

    def _check_changeable(self, context: EventContext) -> None:
        self.check_not_archived()
        self.check_in_sequence(context)

    @event(ContactDetailsChanged)
    def _details_changed(self, changes: dict[str, Any], context: EventContext) -> None:
        self.email = changes.get("email", self.email)

    @event(ContactLinked)
    def _linked(self, client_id: UUID, context: EventContext) -> None:
        self.client_id = client_id

    @event(ContactUnlinked)
    def _unlinked(self, client_id: UUID, context: EventContext) -> None:
        self.client_id = None

    @event(ContactArchived)
    def _archived(self, context: EventContext) -> None:
        self.archived = True

    @event(ContactRestored)
    def _restored(self, context: EventContext) -> None:
        self.archived = False
