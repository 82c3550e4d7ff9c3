"""One contact email per organization, enforced by a deterministic-id aggregate.

The claim's id is derived from (organization, normalized email), so two concurrent creates
with the same email both try to record version 1 of the same aggregate: the store's unique
(id, version) key lets exactly one of them succeed.
"""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from aggregates.base import CrmAggregate
from aggregates.context import EventContext
from aggregates.errors import RuleBroken


def normalized_email(email: str) -> str:
    """Emails compare without surrounding space and case (``lower``, not ``casefold``:
    ß and ss are different addresses)."""
    return email.strip().lower()


class EmailClaim(CrmAggregate):
    """Which contact holds an email address in an organization, if any."""

    class EmailClaimed(CrmAggregate.Created):
        email: str
        contact_id: UUID

    class EmailReclaimed(CrmAggregate.Event):
        contact_id: UUID

    class EmailReleased(CrmAggregate.Event):
        contact_id: UUID

    @staticmethod
    def create_id(email: str, context: EventContext, **_: Any) -> UUID:
        return EmailClaim.id_for(context.organization_id, email)

    @staticmethod
    def id_for(organization_id: UUID, email: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"monton-crm:email:{organization_id}:{normalized_email(email)}")

    @event(EmailClaimed)
    def __init__(self, email: str, contact_id: UUID, context: EventContext) -> None:
        self.email = normalized_email(email)
        self.contact_id: UUID | None = contact_id

    def claim_for(self, contact_id: UUID, context: EventContext) -> None:
        if self.contact_id == contact_id:
            return
        if self.contact_id is not None:
            raise RuleBroken(f"Email {self.email} is already used by contact {self.contact_id}.")
        self._reclaimed(contact_id=contact_id, context=context)

    def release(self, contact_id: UUID, context: EventContext) -> None:
        """Free the email if ``contact_id`` holds it."""
        if self.contact_id == contact_id:
            self.check_in_sequence(context)
            self._released(contact_id=contact_id, context=context)

    @event(EmailReclaimed)
    def _reclaimed(self, contact_id: UUID, context: EventContext) -> None:
        self.contact_id = contact_id

    @event(EmailReleased)
    def _released(self, contact_id: UUID, context: EventContext) -> None:
        self.contact_id = None
