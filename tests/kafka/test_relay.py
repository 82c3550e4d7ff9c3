"""The relay publishes every stored event, once per run, in order per record, keyed by record."""

from __future__ import annotations

import json
import random
from collections import defaultdict

import jsonschema  # type: ignore[import-untyped]

from commands.service import CrmApplication
from crm.settings import Settings
from event_store.envelope import envelope_schema
from event_store.read_model_store import ReadModelStore
from event_store.relay import RELAY_OFFSETS_TABLE, EventRelay
from tests.kafka.stream import generate, read_topic


def test_the_relay_publishes_every_stored_event_keyed_by_record_in_log_order(
    kafka_settings: Settings, app: CrmApplication, relay: EventRelay
) -> None:
    generate(app, random.Random(3), clients=20, deals=150, rounds=5)
    head = app.head_position()

    published = relay.catch_up()

    assert published == head == relay.position
    messages = read_topic(kafka_settings.kafka_bootstrap_servers, kafka_settings.kafka_topic)
    assert len(messages) == head
    validator = jsonschema.Draft202012Validator(envelope_schema())
    versions: dict[str, list[int]] = defaultdict(list)
    last_position: dict[int, int] = defaultdict(int)
    for message in messages:
        envelope = json.loads(message.value)
        validator.validate(envelope)
        assert message.key == envelope["subject"].encode()
        versions[envelope["subject"]].append(envelope["aggregateversion"])
        assert envelope["position"] > last_position[message.partition], "out of log order"
        last_position[message.partition] = envelope["position"]
    assert sorted(p for m in messages for p in [json.loads(m.value)["position"]]) == list(
        range(1, head + 1)
    )
    for record, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), f"{record}'s events are not in order"
    assert len({m.partition for m in messages}) > 1


def test_the_relay_records_each_partitions_end_offset_with_its_position(
    kafka_settings: Settings, app: CrmApplication, relay: EventRelay
) -> None:
    generate(app, random.Random(4), clients=5, deals=40, rounds=2)
    relay.catch_up()
    generate(app, random.Random(5), clients=2, deals=10, rounds=1)

    relay.catch_up()

    messages = read_topic(kafka_settings.kafka_bootstrap_servers, kafka_settings.kafka_topic)
    ends: dict[int, int] = {}
    for message in messages:
        ends[message.partition] = message.offset + 1
    store = ReadModelStore(kafka_settings.location())
    try:
        with store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT kafka_partition, next_offset FROM {RELAY_OFFSETS_TABLE} WHERE topic = ?",
                [kafka_settings.kafka_topic],
            )
            recorded = {row["kafka_partition"]: row["next_offset"] for row in cursor.fetchall()}
    finally:
        store.close()
    assert recorded == ends
    assert relay.position == app.head_position()
