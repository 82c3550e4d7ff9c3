"""The event stream's message format: a versioned JSON envelope around one stored event.

Each Kafka message's value is a CloudEvents 1.0 event in structured mode (JSON), described by
the JSON Schema ``event_store/schemas/event-envelope.v1.json``::

    {"specversion": "1.0", "id": "<aggregate id>:<version>", "source": "urn:monton:crm",
     "type": "StageChanged", "subject": "<aggregate id>", "time": "<recorded, RFC 3339>",
     "datacontenttype": "application/json",
     "envelopeversion": 1, "crmtopic": "aggregates.deal:Deal.StageChanged",
     "aggregatetype": "Deal", "aggregateversion": 3, "position": 1234,
     "organizationid": "<uuid>", "occurredat": "<business time, RFC 3339>",
     "data": {... the event's own state, as the event store's transcoder wrote it ...}}

The message key is the aggregate id, so one record's events stay in order in one partition.
``id`` (aggregate id and version) is unique per event: a consumer that sees it twice — the
stream is at-least-once — keeps the first. ``data`` is the stored JSON unchanged, so a consumer
with the CRM's transcoder rebuilds the very domain event (:class:`EnvelopeDecoder`); others
read it as plain JSON (``{"_type_": …, "_data_": …}`` marks the values of custom types).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, Notification, StoredEvent, Transcoder

from event_store.typed_states import TypedMapper

ENVELOPE_VERSION = 1
SPEC_VERSION = "1.0"
SOURCE = "urn:monton:crm"
CONTENT_TYPE = "application/json"
SCHEMA_FILE = "event-envelope.v1.json"
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class UnsupportedEnvelope(ValueError):
    """A message this code cannot read: not our envelope, or a newer major version of it."""


@cache
def envelope_schema() -> dict[str, Any]:
    """The JSON Schema of the envelope (shipped with the package)."""
    text = resources.files("event_store").joinpath("schemas", SCHEMA_FILE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _typed(value: Any) -> Any:
    """The ``_data_`` of a transcoded value (``{"_type_": …, "_data_": …}``), else the value."""
    if isinstance(value, dict) and "_data_" in value:
        return value["_data_"]
    return value


def _canonical_uuid(value: Any) -> str | None:
    try:
        return str(UUID(str(_typed(value))))
    except ValueError:
        return None


class EnvelopeEncoder:
    """Wraps stored events (notifications) in the envelope, with the store's own JSON as data."""

    def __init__(self, mapper: Mapper[UUID], source: str = SOURCE) -> None:
        self._mapper = mapper
        self.source = source

    def key(self, notification: Notification) -> bytes:
        return str(notification.originator_id).encode()

    def encode(self, notification: Notification) -> bytes:
        state = self._plain_state(notification.state)
        fields: dict[str, Any] = json.loads(state)
        aggregate_id = str(notification.originator_id)
        qualname = notification.topic.partition(":")[2]
        recorded = _typed(fields.get("timestamp"))
        context = _typed(fields.get("context"))
        context = context if isinstance(context, dict) else {}
        header: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": f"{aggregate_id}:{notification.originator_version}",
            "source": self.source,
            "type": qualname.rpartition(".")[2],
            "subject": aggregate_id,
            "time": recorded,
            "datacontenttype": CONTENT_TYPE,
            "envelopeversion": ENVELOPE_VERSION,
            "crmtopic": notification.topic,
            "aggregatetype": qualname.partition(".")[0],
            "aggregateversion": notification.originator_version,
            "position": notification.id,
            "occurredat": context.get("occurred_at", recorded),
        }
        organization = context.get("organization_id", fields.get("organization_id"))
        if organization is not None and (organization_id := _canonical_uuid(organization)):
            header["organizationid"] = organization_id
        # ``data`` goes last and verbatim: the stored bytes are already the event's JSON.
        head = _COMPACT.encode(header).encode()
        return head[:-1] + b',"data":' + state + b"}"

    def _plain_state(self, state: bytes) -> bytes:
        """The transcoder's JSON of a stored state (undoing the store's cipher/compression)."""
        if self._mapper.cipher is not None:
            state = self._mapper.cipher.decrypt(state)
        if self._mapper.compressor is not None:
            state = self._mapper.compressor.decompress(state)
        return state


@dataclass(frozen=True)
class Envelope:
    """The attributes of one message that a consumer routes and orders by."""

    aggregate_id: UUID
    version: int
    position: int
    topic: str
    data: Any

    @property
    def event_id(self) -> str:
        return f"{self.aggregate_id}:{self.version}"


class EnvelopeDecoder:
    """Reads messages of the event stream back into the CRM's domain events."""

    def __init__(self, transcoder: Transcoder) -> None:
        self._transcoder = transcoder
        # No cipher and no compressor: ``data`` is the transcoder's plain JSON.
        self._mapper: Mapper[UUID] = TypedMapper(transcoder=transcoder)

    @staticmethod
    def parse(value: bytes) -> Envelope:
        try:
            message = json.loads(value)
            if message.get("specversion") != SPEC_VERSION:
                raise UnsupportedEnvelope(f"not a CloudEvents 1.0 message: {value[:80]!r}")
            if message.get("envelopeversion") != ENVELOPE_VERSION:
                raise UnsupportedEnvelope(
                    f"envelope version {message.get('envelopeversion')!r}; "
                    f"this code reads version {ENVELOPE_VERSION}"
                )
            return Envelope(
                aggregate_id=UUID(message["subject"]),
                version=int(message["aggregateversion"]),
                position=int(message["position"]),
                topic=str(message["crmtopic"]),
                data=message["data"],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            if isinstance(error, UnsupportedEnvelope):
                raise
            raise UnsupportedEnvelope(f"not an event envelope: {error}") from error

    def to_domain_event(self, envelope: Envelope) -> DomainEventProtocol[UUID]:
        state = _COMPACT.encode(envelope.data).encode()
        stored = StoredEvent(
            originator_id=envelope.aggregate_id,
            originator_version=envelope.version,
            topic=envelope.topic,
            state=state,
        )
        return self._mapper.to_domain_event(stored)

    def decode(self, value: bytes) -> DomainEventProtocol[UUID]:
        """The domain event a message carries."""
        return self.to_domain_event(self.parse(value))
