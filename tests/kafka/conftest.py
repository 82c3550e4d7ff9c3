"""Fixtures of the event-stream tests: the test broker, a topic of one's own, the store kinds,
and the application, relay and read-model store over them."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator

import pytest

with warnings.catch_warnings():  # kafka-python 3.0 loads its protocol with deprecated calls
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka  # type: ignore[import-untyped]  # noqa: F401

from commands.service import CrmApplication
from crm.kafka_wiring import build_relay
from crm.settings import Settings
from event_store.read_model_store import ReadModelStore
from event_store.relay import EventRelay
from tests.kafka.stream import broker_address


@pytest.fixture
def bootstrap() -> str:
    """The test broker (``scripts/test.sh`` starts one on loopback)."""
    return broker_address()


@pytest.fixture
def kafka_settings(settings: Settings, bootstrap: str) -> Settings:
    """The store of ``settings`` (SQLite or PostgreSQL) and a fresh topic on the test broker."""
    return settings.model_copy(
        update={
            "kafka_bootstrap_servers": bootstrap,
            "kafka_topic": f"crm.events.test-{uuid.uuid4().hex[:12]}",
            "relay_batch_size": 250,
            "projection_batch_size": 250,
        }
    )


@pytest.fixture
def app(kafka_settings: Settings) -> Iterator[CrmApplication]:
    application = CrmApplication(kafka_settings.location())
    try:
        yield application
    finally:
        application.close()


@pytest.fixture
def relay(kafka_settings: Settings) -> Iterator[EventRelay]:
    built = build_relay(kafka_settings)
    try:
        yield built
    finally:
        built.close()
        built.events.close()
        built.store.close()


@pytest.fixture
def read_store(kafka_settings: Settings) -> Iterator[ReadModelStore]:
    store = ReadModelStore(kafka_settings.location())
    try:
        yield store
    finally:
        store.close()
