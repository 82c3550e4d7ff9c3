"""JSON transcodings for the value types our events carry beyond the library's defaults."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import JSONTranscoder, Transcoding

from aggregates.context import EventContext

CONTAINERS = (dict, list)  # what JSON nests; the types encoded by a transcoding are dicts


class CrmTranscoder(JSONTranscoder):
    """The library's JSON transcoder, reading stored events with ``msgspec``'s parser.

    Python's ``json`` spends most of the time it takes to turn a stored event back into a
    domain event. ``msgspec`` reads the same JSON into the same values, integers of any size
    included, several times faster; what it refuses (``NaN`` and infinities, which Python's
    encoder writes) goes to Python's ``json``. The library's hook then revives the encoded
    types (``{"_type_": …, "_data_": …}``), inner objects before outer ones, as ``json``'s
    ``object_hook`` does."""

    _parser = msgspec.json.Decoder()

    def decode(self, data: bytes) -> Any:
        try:
            parsed = self._parser.decode(data)
        except msgspec.MsgspecError:
            return super().decode(data)
        return self._revive(parsed)

    def _revive(self, value: Any) -> Any:
        if type(value) is dict:
            for key, item in value.items():
                if type(item) in CONTAINERS:
                    value[key] = self._revive(item)
            return self._decode_obj(value) if len(value) == 2 else value  # the hook's test
        if type(value) is list:
            return [self._revive(item) if type(item) in CONTAINERS else item for item in value]
        return value


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
