"""The base every CRM aggregate shares: its organization and its business clock."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate

from aggregates.context import EventContext
from aggregates.errors import InvalidValue, RuleBroken


class CrmAggregate(Aggregate):
    """An aggregate owned by one organization whose events carry an :class:`EventContext`."""

    organization_id: UUID
    last_occurred_at: datetime
    archived: bool

    class Event(Aggregate.Event):
        context: EventContext

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, CrmAggregate)
            aggregate.last_occurred_at = self.context.occurred_at

    class Created(Event, Aggregate.Created):
        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, CrmAggregate)
            aggregate.organization_id = self.context.organization_id
            aggregate.last_occurred_at = self.context.occurred_at
            aggregate.archived = False

    def check_in_sequence(self, context: EventContext) -> None:
        """Refuse a business time earlier than this record's previous event."""
        if context.occurred_at.utcoffset() is None:
            raise InvalidValue("occurred_at", "occurred_at needs a UTC offset, e.g. Z or +02:00.")
        if context.occurred_at < self.last_occurred_at:
            raise RuleBroken(
                f"occurred_at {context.occurred_at.isoformat()} is before this record's "
                f"previous event at {self.last_occurred_at.isoformat()}."
            )

    def check_not_archived(self) -> None:
        if self.archived:
            raise RuleBroken(f"{type(self).__name__} {self.id} is archived; restore it first.")
