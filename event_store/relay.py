"""The Kafka relay: publishes the event log to a topic, in order, at least once.

It follows the event store the way the projection worker does — ``select_notifications`` after
its own tracked position, a batch at a time — and sends each batch with an idempotent producer
(``acks=all``), keyed by aggregate id. Only when the broker has acknowledged every message of the
batch does it record the batch's last position, together with the end offset it reached in each
partition, in one transaction of the read-model database (the library's tracking recorder, as
the projections use). A relay stopped or killed anywhere in between publishes the batch again
when it restarts: the stream is at-least-once and consumers keep the first copy of each event
(aggregate id and version).

The producer never gives up on a message while the relay runs (retries and the delivery timeout
are unbounded): were it to drop one message of a partition and deliver the next, a consumer
folding by version would skip the dropped one for good. The relay waits out broker outages
instead, in bounded steps that a stop request interrupts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eventsourcing.persistence import IntegrityError, Notification, Tracking
from kafka import KafkaAdminClient, KafkaProducer  # type: ignore[import-untyped]
from kafka.errors import (  # type: ignore[import-untyped]
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    UnknownError,
)
from kafka.partitioner import DefaultPartitioner  # type: ignore[import-untyped]
from kafka.partitioner.default import murmur2  # type: ignore[import-untyped]

from event_store.application import EventStoreApplication
from event_store.envelope import EnvelopeEncoder
from event_store.read_model_store import ReadModelStore, SqlCursor

log = logging.getLogger(__name__)

RELAY_OFFSETS_TABLE = "kafka_relay_offsets"
TOPIC_PARTITIONS = 6
IDLE_POLL_SECONDS = 0.5
RETRY_SECONDS = 1.0
ACK_WAIT_SECONDS = 1.0
# "Never" for the producer: a message is retried until it is acknowledged.
NEVER_GIVE_UP_MS = 2**31 - 1

ProducerFactory = Callable[[], Any]


def relay_tracking_name(topic: str) -> str:
    """The tracking record of the relay that publishes to ``topic``."""
    return f"kafka-relay:{topic}"


def create_relay_offsets_table(cursor: SqlCursor) -> None:
    """Per topic partition, the offset after the last message the relay saw acknowledged."""
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {RELAY_OFFSETS_TABLE} (topic TEXT NOT NULL, "
        "kafka_partition INTEGER NOT NULL, next_offset BIGINT NOT NULL, "
        "PRIMARY KEY (topic, kafka_partition))"
    )


class KeyHashPartitioner(DefaultPartitioner):  # type: ignore[misc]
    """The default (Java-compatible) choice of partition by key, remembering each key's hash.

    kafka-python hashes in pure Python; a record's events share one key, so most sends hit
    the cache.
    """

    def __init__(self) -> None:
        self._hash = lru_cache(maxsize=65_536)(murmur2)

    def partition(
        self,
        topic: str,
        key: Any,
        serialized_key: bytes | None,
        value: Any,
        serialized_value: Any,
        cluster: Any,
    ) -> int:
        if serialized_key is None:
            partition: int = super().partition(
                topic, key, serialized_key, value, serialized_value, cluster
            )
            return partition
        partitions = sorted(cluster.partitions_for_topic(topic))
        chosen: int = partitions[(self._hash(serialized_key) & 0x7FFFFFFF) % len(partitions)]
        return chosen


def new_producer(bootstrap_servers: str, client_id: str = "crm-relay") -> Any:
    """An idempotent producer (acks=all) that retries every message until it is acknowledged."""
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        delivery_timeout_ms=NEVER_GIVE_UP_MS,
        request_timeout_ms=30_000,
        linger_ms=20,
        batch_size=512 * 1024,
        max_block_ms=10_000,
        bootstrap_timeout_ms=5_000,
        reconnect_backoff_max_ms=1_000,
        allow_auto_create_topics=False,
        metrics_enabled=False,
        partitioner=KeyHashPartitioner(),
    )


def ensure_topic(bootstrap_servers: str, topic: str, partitions: int = TOPIC_PARTITIONS) -> bool:
    """Create the event topic if it is missing (kept forever); True if this call created it.

    Retention is unlimited because the topic is the log a new consumer group rebuilds its read
    models from. The replication factor is the broker's default.
    """
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id="crm-topic-setup",
        bootstrap_timeout_ms=5_000,
        request_timeout_ms=15_000,
    )
    try:
        admin.create_topics(
            {topic: {"num_partitions": partitions, "configs": {"retention.ms": "-1"}}},
            timeout_ms=15_000,
            wait_for_metadata=True,
        )
    except TopicAlreadyExistsError:
        return False
    finally:
        admin.close()
    log.info("created topic %s with %d partitions", topic, partitions)
    return True


@dataclass(frozen=True)
class RelayedBatch:
    events: int
    position: int


class RelayStopped(Exception):
    """A stop was requested while the relay waited for the broker."""


class EventRelay:
    """Publishes the event store's notifications to one Kafka topic, ``batch_size`` at a time."""

    def __init__(
        self,
        events: EventStoreApplication,
        store: ReadModelStore,
        producer_factory: ProducerFactory,
        *,
        topic: str,
        batch_size: int = 1000,
        prepare_topic: Callable[[], object] | None = None,
    ) -> None:
        self.events = events
        self.store = store
        self.topic = topic
        self.batch_size = batch_size
        self.tracking_name = relay_tracking_name(topic)
        self.encoder = EnvelopeEncoder(events.mapper)
        self.wakeup = threading.Event()
        self._producer_factory = producer_factory
        self._prepare_topic = prepare_topic
        self._producer: Any = None
        with store.transaction(commit=True) as cursor:
            store.lock_schema(cursor)  # the relay and the workers start together
            create_relay_offsets_table(cursor)

    @property
    def position(self) -> int:
        """The position of the last event the broker acknowledged (and the relay recorded)."""
        return self.store.position(self.tracking_name)

    def publish_batch(self, stop: threading.Event | None = None) -> RelayedBatch:
        """Publish the next batch after the recorded position; 0 events when caught up."""
        start = self.position
        notifications = self.events.recorder.select_notifications(
            start=start, limit=self.batch_size, inclusive_of_start=False
        )
        if not notifications:
            return RelayedBatch(0, start)
        end_offsets = self._publish(notifications, stop or threading.Event())
        last = notifications[-1].id
        with self.store.transaction(commit=True) as cursor:
            self.store.insert_tracking(cursor, Tracking(self.tracking_name, last))
            cursor.executemany(
                f"INSERT INTO {RELAY_OFFSETS_TABLE} (topic, kafka_partition, next_offset) "
                "VALUES (?, ?, ?) ON CONFLICT (topic, kafka_partition) DO UPDATE "
                f"SET next_offset = excluded.next_offset "
                f"WHERE {RELAY_OFFSETS_TABLE}.next_offset < excluded.next_offset",
                [(self.topic, partition, end) for partition, end in sorted(end_offsets.items())],
            )
        return RelayedBatch(len(notifications), last)

    def catch_up(self) -> int:
        """Publish until the log's head as it was when called; return the events published."""
        head = self.events.head_position()
        published = 0
        while self.position < head:
            batch = self.publish_batch()
            if batch.events == 0:
                break
            published += batch.events
        return published

    def run(self, stop: threading.Event) -> None:
        """Publish until ``stop`` is set, sleeping on :attr:`wakeup` when caught up."""
        waiting_for_broker = False
        while not stop.is_set():
            self.wakeup.clear()
            try:
                batch = self.publish_batch(stop)
            except RelayStopped:
                break
            except IntegrityError:
                log.info("another relay recorded this batch first; reloading the position")
                continue
            except KafkaError as error:
                if not waiting_for_broker:
                    log.warning("publishing failed (%s); retrying with a new producer", error)
                waiting_for_broker = True
                self._discard_producer()
                stop.wait(RETRY_SECONDS)
                continue
            except Exception:
                log.exception("relay batch failed; retrying in a second")
                stop.wait(RETRY_SECONDS)
                continue
            if waiting_for_broker:
                log.info("publishing again, at position %d", batch.position)
                waiting_for_broker = False
            if batch.events == 0:
                self.wakeup.wait(IDLE_POLL_SECONDS)

    def close(self) -> None:
        self._discard_producer()

    def _publish(
        self, notifications: Sequence[Notification], stop: threading.Event
    ) -> dict[int, int]:
        """Send every notification and wait for all acknowledgements; return end offsets."""
        producer = self._connected()
        encode, key = self.encoder.encode, self.encoder.key
        futures = [producer.send(self.topic, key=key(n), value=encode(n)) for n in notifications]
        waited = 0
        while True:
            try:
                producer.flush(timeout=ACK_WAIT_SECONDS)
                break
            except (KafkaTimeoutError, UnknownError):  # not acknowledged yet: the broker is away
                if stop.is_set():
                    raise RelayStopped from None
                if waited % 30 == 0:
                    log.warning(
                        "waiting for the broker to acknowledge events %d to %d",
                        notifications[0].id,
                        notifications[-1].id,
                    )
                waited += 1
        end_offsets: dict[int, int] = {}
        for future in futures:
            metadata = future.get(timeout=ACK_WAIT_SECONDS)  # raises the send's error, if any
            end_offsets[metadata.partition] = max(
                end_offsets.get(metadata.partition, 0), metadata.offset + 1
            )
        return end_offsets

    def _connected(self) -> Any:
        if self._producer is None:
            if self._prepare_topic is not None:
                self._prepare_topic()
            self._producer = self._producer_factory()
        return self._producer

    def _discard_producer(self) -> None:
        """Close the producer, dropping whatever it has not delivered (it is sent again)."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=ACK_WAIT_SECONDS)
        except KafkaError:
            # close() gives up when its flush times out; stop the sender thread anyway.
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                sender.force_close()
