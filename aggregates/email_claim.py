"""One contact email per organization, enforced by a deterministic-id aggregate.

The claim's id is derived from (organization, normalized email), so two concurrent creates
with the same email both try to record version 1 of the same aggregate: the store's unique
(id, version) key lets exactly one of them succeed.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from aggregates.errors import RuleBroken


def normalized_email(email: str) -> str:
    return email.strip().casefold()


class EmailClaim(Aggregate):
    """Which contact holds an email address in an organization, if any."""

    class EmailClaimed(Aggregate.Created):
        organization_id: UUID
        email: str
        contact_id: UUID

    class EmailReclaimed(Aggregate.Event):
        contact_id: UUID

    class EmailReleased(Aggregate.Event):
        contact_id: UUID

    @staticmethod
    def create_id(organization_id: UUID, email: str, contact_id: UUID) -> UUID:
        return EmailClaim.id_for(organization_id, email)

    @staticmethod
    def id_for(organization_id: UUID, email: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"monton-crm:email:{organization_id}:{normalized_email(email)}")

    @event(EmailClaimed)
    def __init__(self, organization_id: UUID, email: str, contact_id: UUID) -> None:
        self.organization_id = organization_id
        self.email = normalized_email(email)
        self.contact_id: UUID | None = contact_id

    def claim_for(self, contact_id: UUID) -> None:
        if self.contact_id == contact_id:
            return
        if self.contact_id is not None:
            raise RuleBroken(f"Email {self.email} is already used by contact {self.contact_id}.")
        self._reclaimed(contact_id=contact_id)

    def release(self) -> None:
        if self.contact_id is not None:
            self._released(contact_id=self.contact_id)

    @event(EmailReclaimed)
    def _reclaimed(self, contact_id: UUID) -> None:
        self.contact_id = contact_id

    @event(EmailReleased)
    def _released(self, contact_id: UUID) -> None:
        self.contact_id = None
