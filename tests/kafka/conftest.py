"""Fixtures of the event-stream tests: the test broker, a topic of one's own, the store kinds."""

from __future__ import annotations

import uuid
import warnings

import pytest

with warnings.catch_warnings():  # kafka-python 3.0 loads its protocol with deprecated calls
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka  # type: ignore[import-untyped]  # noqa: F401

from crm.settings import Settings
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
