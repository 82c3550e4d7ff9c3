"""JSON transcodings for the value types our events carry beyond the library's defaults."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from eventsourcing.persistence import JSONTranscoder, Transcoding

from aggregates.context import EventContext


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class EventContextAsDict(Transcoding):
    type = EventContext
    name = "event_context"

    def encode(self, obj: EventContext) -> dict[str, Any]:
        return {
            "organization_id": obj.organization_id.hex,
            "actor_id": obj.actor_id,
            "occurred_at": obj.occurred_at.isoformat(),
            "command_id": obj.command_id.hex,
            "correlation_id": obj.correlation_id.hex,
        }

    def decode(self, data: dict[str, Any]) -> EventContext:
        command_id = UUID(data["command_id"])
        correlation = data["correlation_id"]
        return EventContext(
            organization_id=organization_uuid(data["organization_id"]),
            actor_id=data["actor_id"],
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            command_id=command_id,
            # A command is usually its own correlation: one UUID parsed, not two.
            correlation_id=command_id if correlation == data["command_id"] else UUID(correlation),
        )


@lru_cache(maxsize=4096)
def organization_uuid(hex_id: str) -> UUID:
    """A few organizations, on every event decoded."""
    return UUID(hex_id)


def register_crm_transcodings(transcoder: JSONTranscoder) -> None:
    transcoder.register(DateAsISO())
    transcoder.register(EventContextAsDict())
