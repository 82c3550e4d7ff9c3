"""What the event-stream tests share: a workload, the topic's content, read-model dumps, workers.

Everything waits with a deadline; nothing here mocks Kafka.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from kafka import KafkaConsumer, TopicPartition  # type: ignore[import-untyped]

from aggregates.client import Client
from aggregates.contact import Contact
from aggregates.context import EventContext
from aggregates.deal import Deal
from aggregates.pipeline import DEFAULT_PIPELINE
from commands.service import CrmApplication
from crm.identity import DEFAULT_ORGANIZATION_ID
from crm.kafka_wiring import build_kafka_worker
from crm.settings import Settings
from event_store.read_model_store import ReadModelStore
from projections.kafka_worker import KafkaProjectionWorker
from projections.read_models import ReadModels
from projections.worker import TRACKING_NAME, ProjectionWorker

OPEN_STAGES = DEFAULT_PIPELINE.open_stage_ids()
SAVE_CHUNK = 250
CLOSE_DATES = tuple(date(2027, month, 1) for month in (1, 4, 7, 10))

KAFKA_VARIABLE = "CRM_TEST_KAFKA_BOOTSTRAP"
Dump = dict[str, list[tuple[Any, ...]]]
EXERCISED_TABLES = ("rm_clients", "rm_contacts", "rm_deals", "rm_pipeline_value", "rm_audit")


def broker_address() -> str:
    """The test broker's address (``scripts/test.sh`` starts one); skips the test without one,
    fails it on CI."""
    address = os.environ.get(KAFKA_VARIABLE)
    if not address:
        if os.environ.get("CI"):
            pytest.fail(f"{KAFKA_VARIABLE} is not set: run the suite with scripts/test.sh")
        pytest.skip(f"{KAFKA_VARIABLE} is not set (scripts/test.sh starts Kafka)")
    return address


def context() -> EventContext:
    command_id = uuid4()
    return EventContext(
        organization_id=DEFAULT_ORGANIZATION_ID,
        actor_id="stream-test",
        occurred_at=datetime.now(UTC),
        command_id=command_id,
        correlation_id=command_id,
    )


# --- a workload ---------------------------------------------------------------------------


def move(deal: Deal, rng: random.Random) -> bool:
    """One more event for an open or closed deal (archived deals stay as they are)."""
    if deal.archived:
        return False
    if not deal.is_open:
        deal.reopen(rng.choice(OPEN_STAGES), context())
        return True
    roll = rng.random()
    if roll < 0.45:
        deal.change_stage(rng.choice([s for s in OPEN_STAGES if s != deal.stage]), None, context())
    elif roll < 0.65:
        deal.change_value(Decimal(rng.randrange(100, 1_000_000)) / 100, "EUR", context())
    elif roll < 0.75:
        deal.change_probability(rng.randrange(0, 101), context())
    elif roll < 0.85:
        deal.win(context())
    elif roll < 0.95:
        deal.lose("budget", rng.choice(["Globex", None]), context())
    else:
        deal.archive(context())
    return True


def save_in_chunks(app: CrmApplication, records: list[Any]) -> None:
    for start in range(0, len(records), SAVE_CHUNK):
        app.save(*records[start : start + SAVE_CHUNK])


def generate(
    app: CrmApplication, rng: random.Random, *, clients: int, deals: int, rounds: int
) -> list[Deal]:
    """Clients, linked contacts and deals moved round by round; returns the deals."""
    registered = [
        Client(
            name=f"Client {n}",
            category="prospect",
            status="prospect",
            details={},
            context=context(),
        )
        for n in range(clients)
    ]
    save_in_chunks(app, registered)
    contacts = []
    for n in range(clients * 2):
        contact = Contact(
            first_name="Ana",
            last_name=f"Ruiz {n}",
            email=f"ana.{n}@example.com",
            details={},
            context=context(),
        )
        contact.link_to(registered[n % clients].id, context())
        contacts.append(contact)
    save_in_chunks(app, contacts)
    opened = [
        Deal.open(
            name=f"Deal {n}",
            client_id=registered[n % clients].id,
            value=Decimal(rng.randrange(100, 1_000_000)) / 100,
            currency="EUR",
            expected_close_date=rng.choice(CLOSE_DATES),
            owner_id=rng.choice(["maria", "jon", None]),
            context=context(),
        )
        for n in range(deals)
    ]
    save_in_chunks(app, opened)
    for _ in range(rounds):
        moved = [deal for deal in opened if move(deal, rng)]
        rng.shuffle(moved)
        save_in_chunks(app, moved)
    return opened


@contextmanager
def writing(app: CrmApplication, deals: list[Deal], seed: int) -> Iterator[threading.Event]:
    """Keep moving deals (about 20 events per save) until the block ends."""
    stop = threading.Event()
    rng = random.Random(seed)

    def write() -> None:
        while not stop.is_set():
            moved = [deal for deal in rng.sample(deals, 20) if move(deal, rng)]
            app.save(*moved)
            stop.wait(0.02)

    thread = threading.Thread(target=write, name="test-writer", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the writer did not stop"


# --- the topic ----------------------------------------------------------------------------


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Any]:
    """Every message of ``topic`` (all partitions, from the start), in offset order."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, metrics_enabled=False
    )
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        assert partitions, f"topic {topic} has no partitions"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for batch in consumer.poll(timeout_ms=200, max_records=5000).values():
                messages.extend(batch)
        return sorted(messages, key=lambda m: (m.partition, m.offset))
    finally:
        consumer.close(autocommit=False)


# --- the read models ----------------------------------------------------------------------


def dump(store: ReadModelStore) -> Dump:
    """Every table of every read model, every row, sorted (key columns come first)."""
    tables: Dump = {}
    with store.transaction(commit=False) as cursor:
        for projection in ReadModels(store).projections:
            for statement in projection.schema():
                if statement.startswith("CREATE TABLE"):
                    table = statement.split()[5]
                    cursor.execute(f"SELECT * FROM {table}")
                    rows = [tuple(dict(row).values()) for row in cursor.fetchall()]
                    tables[table] = sorted(rows, key=lambda row: [repr(v) for v in row])
    return tables


def rebuilt_from_store(app: CrmApplication, store: ReadModelStore) -> Dump:
    """Empty the read models, rebuild them from the event store, and dump them."""
    rebuilder = ProjectionWorker(app, store, batch_size=1000)
    rebuilder.reset()
    rebuilder.catch_up()
    return dump(store)


def assert_same_read_models(from_kafka: Dump, from_store: Dump) -> None:
    assert from_kafka.keys() == from_store.keys()
    for table in EXERCISED_TABLES:
        assert from_store[table], f"{table} is empty: the workload does not exercise it"
    for table, rows in from_store.items():
        assert from_kafka[table] == rows, f"{table} built from Kafka differs from the store's"


def read_position(store: ReadModelStore) -> int:
    return store.position(TRACKING_NAME)


def group_of_this_test(settings: Settings, name: str) -> str:
    """A consumer group no other test shares: a killed member of an earlier test's group
    stays in it until its session times out, and would hold up this test's rebalances."""
    return f"{name}.{settings.kafka_topic}"


@contextmanager
def kafka_workers(
    settings: Settings, group: str, count: int
) -> Iterator[list[KafkaProjectionWorker]]:
    """``count`` Kafka-fed workers of ``group``, in threads of this process."""
    stop = threading.Event()
    group = group_of_this_test(settings, group)
    workers = [build_kafka_worker(settings, group) for _ in range(count)]
    threads = [
        threading.Thread(target=w.run, args=(stop,), name=f"kafka-worker-{n}", daemon=True)
        for n, w in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        yield workers
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for worker in workers:
            worker.store.close()
        assert not any(t.is_alive() for t in threads), "a Kafka worker did not stop"


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
