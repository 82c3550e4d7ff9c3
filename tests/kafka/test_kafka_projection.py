"""Read models fed from Kafka by a consumer group are exactly the read models fed from the store."""

from __future__ import annotations

import random

from commands.service import CrmApplication
from crm.settings import Settings
from event_store.read_model_store import ReadModelStore
from event_store.relay import EventRelay
from tests.kafka.stream import (
    assert_same_read_models,
    dump,
    generate,
    kafka_workers,
    read_position,
    read_topic,
    rebuilt_from_store,
    wait_for,
)


def test_read_models_built_by_two_kafka_workers_equal_those_built_from_the_store_row_by_row(
    kafka_settings: Settings, app: CrmApplication, relay: EventRelay, read_store: ReadModelStore
) -> None:
    generate(app, random.Random(10), clients=30, deals=300, rounds=6)
    head = app.head_position()
    relay.catch_up()

    with kafka_workers(kafka_settings, "equal-rows", count=2):
        wait_for(lambda: read_position(read_store) == head, 120, f"read position {head}")
    from_kafka = dump(read_store)

    assert_same_read_models(from_kafka, rebuilt_from_store(app, read_store))


def test_events_published_twice_are_folded_once(
    kafka_settings: Settings, app: CrmApplication, relay: EventRelay, read_store: ReadModelStore
) -> None:
    generate(app, random.Random(11), clients=10, deals=100, rounds=4)
    head = app.head_position()
    relay.catch_up()
    with read_store.transaction(commit=True) as cursor:  # as if the relay lost its position
        read_store.forget_position(cursor, relay.tracking_name)
    relay.catch_up()
    topic = read_topic(kafka_settings.kafka_bootstrap_servers, kafka_settings.kafka_topic)
    assert len(topic) == 2 * head

    with kafka_workers(kafka_settings, "twice", count=1):
        wait_for(lambda: read_position(read_store) == head, 120, f"read position {head}")
    from_kafka = dump(read_store)

    assert_same_read_models(from_kafka, rebuilt_from_store(app, read_store))
