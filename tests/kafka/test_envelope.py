"""The envelope: every stored event becomes a message the schema accepts and the CRM reads back."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from commands.service import CrmApplication
from event_store.envelope import (
    EnvelopeDecoder,
    EnvelopeEncoder,
    UnsupportedEnvelope,
    envelope_schema,
)
from tests.kafka.stream import generate
from tests.stores import settings_for


@pytest.fixture
def app(tmp_path: Path) -> Iterator[CrmApplication]:
    with settings_for("sqlite", tmp_path / "var") as settings:
        application = CrmApplication(settings.location())
        try:
            yield application
        finally:
            application.close()


def test_every_stored_event_becomes_an_envelope_the_schema_accepts_and_the_mapper_reads_back(
    app: CrmApplication,
) -> None:
    generate(app, random.Random(1), clients=3, deals=10, rounds=6)
    encoder, decoder = EnvelopeEncoder(app.mapper), EnvelopeDecoder(app.mapper.transcoder)
    validator = jsonschema.Draft202012Validator(envelope_schema())
    notifications = app.recorder.select_notifications(start=1, limit=10_000)
    assert len(notifications) == app.head_position() > 60

    types = set()
    for notification in notifications:
        value = encoder.encode(notification)
        message = json.loads(value)
        validator.validate(message)
        event = decoder.decode(value)
        assert event == app.mapper.to_domain_event(notification)
        assert encoder.key(notification) == message["subject"].encode()
        assert message["id"] == f"{message['subject']}:{notification.originator_version}"
        assert message["position"] == notification.id
        assert message["type"] == type(event).__name__
        assert datetime.fromisoformat(message["time"]) == event.timestamp  # type: ignore[attr-defined]
        assert datetime.fromisoformat(message["occurredat"]) == event.context.occurred_at  # type: ignore[attr-defined]
        assert message["organizationid"] == str(event.context.organization_id)  # type: ignore[attr-defined]
        types.add(message["type"])
    assert {"ClientRegistered", "ContactLinked", "DealOpened", "StageChanged"} <= types


def test_a_message_of_a_newer_envelope_version_is_refused_not_misread(app: CrmApplication) -> None:
    generate(app, random.Random(2), clients=1, deals=1, rounds=0)
    notification = app.recorder.select_notifications(start=1, limit=1)[0]
    message = json.loads(EnvelopeEncoder(app.mapper).encode(notification))
    message["envelopeversion"] = 2

    with pytest.raises(UnsupportedEnvelope, match="envelope version 2"):
        EnvelopeDecoder.parse(json.dumps(message).encode())
    with pytest.raises(UnsupportedEnvelope):
        EnvelopeDecoder.parse(b"not json")


def test_the_schema_ships_inside_the_event_store_package() -> None:
    schema = envelope_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["envelopeversion"]["const"] == 1
