"""A record's history and its state at a past version or business time, from the event log.

The one read that goes to the store rather than to a read model: every event of one record,
rendered as who changed what and when; a past state is the record's read-model row folded from
its events up to the version or instant asked for — the same fold the live read model uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from aggregates.base import CrmAggregate
from aggregates.client import Client
from aggregates.contact import Contact
from aggregates.deal import Deal
from event_store.application import EventStoreApplication
from projections.clients import ClientsProjection
from projections.contacts import ContactsProjection
from projections.deals import DealsProjection
from projections.listing import InvalidQuery
from projections.row_projection import RowDict, RowProjection

RECORD_KINDS: dict[str, tuple[type[CrmAggregate], RowProjection]] = {
    "client": (Client, ClientsProjection()),
    "contact": (Contact, ContactsProjection()),
    "deal": (Deal, DealsProjection()),
}
BOOKKEEPING = {"originator_id", "originator_version", "originator_topic", "timestamp", "context"}


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    type: str
    actor_id: str
    occurred_at: datetime
    recorded_at: datetime
    command_id: UUID
    correlation_id: UUID
    changes: dict[str, Any]


def plain(value: Any) -> Any:
    """A JSON-ready copy: money and ids as strings, times in ISO 8601."""
    match value:
        case Decimal() | UUID():
            return str(value)
        case datetime() | date():
            return value.isoformat()
        case Enum():
            return value.value
        case dict():
            return {str(k): plain(v) for k, v in value.items()}
        case list() | tuple():
            return [plain(v) for v in value]
        case _:
            return value


class RecordHistory:
    """Reads one record's events from the store, for history and time travel."""

    def __init__(self, events: EventStoreApplication) -> None:
        self.events = events

    def events_of(self, kind: str, organization_id: UUID, record_id: UUID) -> list[Any] | None:
        """The record's events, or None when it is not a ``kind`` of this organization."""
        aggregate_type, _ = RECORD_KINDS[kind]
        events = list(self.events.events.get(record_id))
        if not events or not isinstance(events[0], aggregate_type.Event):
            return None
        if events[0].context.organization_id != organization_id:
            return None
        return events

    def entries(
        self, kind: str, organization_id: UUID, record_id: UUID
    ) -> list[HistoryEntry] | None:
        events = self.events_of(kind, organization_id, record_id)
        if events is None:
            return None
        return [
            HistoryEntry(
                version=event.originator_version,
                type=type(event).__name__,
                actor_id=event.context.actor_id,
                occurred_at=event.context.occurred_at,
                recorded_at=event.timestamp,
                command_id=event.context.command_id,
                correlation_id=event.context.correlation_id,
                changes=plain(
                    {
                        f.name: getattr(event, f.name)
                        for f in dataclasses.fields(event)
                        if f.name not in BOOKKEEPING
                    }
                ),
            )
            for event in events
        ]

    def state(
        self,
        kind: str,
        organization_id: UUID,
        record_id: UUID,
        version: int | None = None,
        at: datetime | None = None,
    ) -> RowDict | None:
        """The record as it stood at ``version`` or at business time ``at``."""
        events = self.events_of(kind, organization_id, record_id)
        if events is None:
            return None
        if version is not None:
            if version > len(events):
                raise InvalidQuery("version", f"The record has {len(events)} versions.")
            events = events[:version]
        if at is not None:
            events = [event for event in events if event.context.occurred_at <= at]
            if not events:
                raise InvalidQuery("at", f"The {kind} did not exist yet at {at.isoformat()}.")
        _, projection = RECORD_KINDS[kind]
        row: RowDict | None = None
        for event in events:
            row = projection.fold(row, event)
        return row
