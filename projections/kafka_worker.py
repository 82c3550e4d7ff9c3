"""The Kafka-fed projection worker: the same read models, fed by a consumer group.

Several workers share the event topic's partitions as one consumer group. Each polled batch is
folded by the same projection code as the store-fed worker (:meth:`ReadModels.apply`), and each
partition's next offset is written to ``rm_kafka_offsets`` in the same transaction as the
read-model change. The database, not Kafka's committed offsets, says where a partition stands:
on assignment a worker seeks to the stored offsets, and before applying a batch it locks the
batch's offset rows and drops any message below the stored offset. So a worker that lost a
partition in a rebalance, or was killed, or polled messages another member has since applied,
cannot apply a message twice, and none is skipped: a batch commits whole or not at all, and a
failed one rewinds the consumer to the stored offsets. Events the relay published twice are
folded once because a read-model row remembers its version.

The worker also keeps the read models' tracking record (``read_models``, what ``crm status``,
``/healthz`` and ``min_position`` reads look at) as a watermark: the highest log position W such
that every event up to W is in the read models. A partition covers everything up to the relay's
recorded position once the group's offset reaches the relay's recorded end offset of that
partition, and otherwise everything up to the last position it applied (the relay publishes in
log order); W is the least of these.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError, OperationalError, Tracking
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition  # type: ignore[import-untyped]
from kafka.errors import KafkaError  # type: ignore[import-untyped]
from kafka.structs import MemberState  # type: ignore[import-untyped]

from event_store.envelope import EnvelopeDecoder
from event_store.read_model_store import ReadModelStore, SqlCursor
from event_store.relay import RELAY_OFFSETS_TABLE, create_relay_offsets_table, relay_tracking_name
from projections.read_models import ReadModels
from projections.worker import TRACKING_NAME

log = logging.getLogger(__name__)

OFFSETS_TABLE = "rm_kafka_offsets"
POLL_TIMEOUT_MS = 100
# Shorter while this worker has applied events its read position does not cover yet (reads
# with min_position wait for it), for EAGER_SECONDS after the last progress: not forever, as
# the relay may record its position in another database, where the watermark cannot see it.
COVERING_POLL_TIMEOUT_MS = 20
EAGER_SECONDS = 1.0
RETRY_SECONDS = 1.0
CONFLICT_RETRY_SECONDS = 0.2
CLOSE_TIMEOUT_MS = 5_000
SESSION_TIMEOUT_MS = 10_000
STUCK_REBALANCE_SECONDS = 3 * SESSION_TIMEOUT_MS / 1000

ConsumerFactory = Callable[[], Any]
Polled = Mapping[Any, Sequence[Any]]


def new_consumer(bootstrap_servers: str, group: str, client_id: str = "crm-projector") -> Any:
    """A consumer of ``group`` that never commits to Kafka: offsets live in the database."""
    return KafkaConsumer(
        bootstrap_servers=bootstrap_servers.split(","),
        group_id=group,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        allow_auto_create_topics=False,
        # A dead member is noticed after session_timeout_ms; the survivors then take over.
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=1_000,
        max_poll_interval_ms=120_000,
        fetch_max_wait_ms=100,
        bootstrap_timeout_ms=5_000,
        reconnect_backoff_max_ms=1_000,
        metadata_max_age_ms=30_000,
        metrics_enabled=False,
    )


@dataclass(frozen=True)
class KafkaBatchResult:
    messages: int
    events_applied: int
    stale_messages: int


class _NoteAssignments(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs on the consumer's IO thread, where no blocking I/O belongs (heartbeats and the
    group protocol wait for it): it only notes the new partitions; the worker seeks them to
    their stored offsets after ``poll()`` returns."""

    def __init__(self, worker: KafkaProjectionWorker) -> None:
        self._worker = worker

    def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        # Nothing to save: every applied batch committed its offsets with its rows.
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        self._worker.note_assigned(assigned)

    def on_partitions_lost(self, lost: Iterable[Any]) -> None:
        log.warning("partitions lost (left the group): %s", sorted(tp.partition for tp in lost))


class KafkaProjectionWorker:
    """Feeds the read models from the event topic as one member of a consumer group."""

    def __init__(
        self,
        consumer_factory: ConsumerFactory,
        store: ReadModelStore,
        decoder: EnvelopeDecoder,
        *,
        group: str,
        topic: str,
        batch_size: int = 1000,
        tracking_name: str = TRACKING_NAME,
        relay_store: ReadModelStore | None = None,
    ) -> None:
        """``relay_store`` holds the relay's records (the first generation's database) when
        ``store`` is another generation of the read models."""
        self.store = store
        self.relay_store = relay_store or store
        self.decoder = decoder
        self.group = group
        self.topic = topic
        self.batch_size = batch_size
        self.tracking_name = tracking_name
        self.read_models = ReadModels(store)
        self._create_tables()
        self._consumer_factory = consumer_factory
        self._consumer: Any = None
        self._listener = _NoteAssignments(self)
        self._assigned_lock = threading.Lock()
        self._newly_assigned: set[Any] = set()  # noted on the IO thread, sought on this one
        self._unsettled_since: float | None = None  # when the group last stopped being stable
        self._applied_position = 0  # the newest log position this worker applied
        self._read_position = 0  # the watermark as this worker last computed it
        self._eager_until = 0.0  # poll briefly until then: something moved just now

    def _create_tables(self) -> None:
        self.read_models.create_tables()
        with self.store.transaction(commit=True) as cursor:
            self.store.lock_schema(cursor)  # workers and the relay start together
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (group_id TEXT NOT NULL, "
                "topic TEXT NOT NULL, kafka_partition INTEGER NOT NULL, "
                "next_offset BIGINT NOT NULL, position BIGINT NOT NULL, "
                "PRIMARY KEY (group_id, topic, kafka_partition))"
            )
        with self.relay_store.transaction(commit=True) as cursor:
            self.relay_store.lock_schema(cursor)
            create_relay_offsets_table(cursor)

    # --- the loop --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; a failed batch is retried from the stored offsets."""
        kafka_unavailable = False
        try:
            while not stop.is_set():
                try:
                    self.poll_once()
                except KafkaError as error:
                    if not kafka_unavailable:
                        log.warning("Kafka unavailable (%s); retrying every second", error)
                    kafka_unavailable = True
                    stop.wait(RETRY_SECONDS)
                    self._rewind()
                except OperationalError as error:
                    # Typically a deadlock with another member's batch (both update the same
                    # summary rows) or a busy SQLite file: the batch rolled back; redo it soon.
                    log.warning("batch rolled back (%s); redoing it", str(error).splitlines()[0])
                    stop.wait(random.uniform(0.0, CONFLICT_RETRY_SECONDS))
                    self._rewind()
                except Exception:
                    log.exception("Kafka projection batch failed; rewinding to stored offsets")
                    stop.wait(RETRY_SECONDS)
                    self._rewind()
                else:
                    kafka_unavailable = False
        finally:
            self.close()

    def poll_once(self) -> KafkaBatchResult:
        """Poll one batch (up to ``batch_size`` messages), apply it, advance the watermark."""
        consumer = self._subscribed()
        covering = self._applied_position > self._read_position
        eager = covering and time.monotonic() < self._eager_until
        timeout = COVERING_POLL_TIMEOUT_MS if eager else POLL_TIMEOUT_MS
        polled = consumer.poll(timeout_ms=timeout, max_records=self.batch_size)
        if newly_assigned := self._take_newly_assigned():
            # Fetched before the seek, from the group's start: the stored offsets say where.
            self.seek_to_stored_offsets(newly_assigned)
            polled = {tp: m for tp, m in polled.items() if tp not in newly_assigned}
        if self._stuck_rebalancing(consumer):
            self.close()  # the next poll joins the group afresh
            return KafkaBatchResult(0, 0, 0)
        result = self.apply(polled) if polled else KafkaBatchResult(0, 0, 0)
        before = self._read_position
        if self.advance_read_position() > before or polled:
            self._eager_until = time.monotonic() + EAGER_SECONDS
        return result

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        self._unsettled_since = None
        self._take_newly_assigned()  # the next consumer's assignments are its own
        if consumer is not None:
            consumer.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)

    # --- one batch -------------------------------------------------------------------------

    def apply(self, polled: Polled) -> KafkaBatchResult:
        """Fold the polled messages into the read models and store the next offsets, at once."""
        by_partition = {tp.partition: list(messages) for tp, messages in polled.items()}
        events: list[DomainEventProtocol[UUID]] = []
        updates: list[tuple[int, int, str, str, int]] = []
        behind: dict[int, int] = {}
        stale = 0
        with self.store.transaction(commit=True) as cursor:
            stored = self._lock_offsets(cursor, sorted(by_partition))
            for partition, messages in sorted(by_partition.items()):
                next_offset, position = stored[partition]
                fresh = [m for m in messages if m.offset >= next_offset]
                stale += len(messages) - len(fresh)
                if not fresh:
                    behind[partition] = next_offset
                    continue
                for message in fresh:
                    envelope = self.decoder.parse(message.value)
                    position = max(position, envelope.position)
                    if ReadModels.is_projected(envelope.topic):
                        events.append(self.decoder.to_domain_event(envelope))
                updates.append((fresh[-1].offset + 1, position, self.group, self.topic, partition))
            self.read_models.apply(cursor, events)
            cursor.executemany(
                f"UPDATE {OFFSETS_TABLE} SET next_offset = ?, position = ? "
                "WHERE group_id = ? AND topic = ? AND kafka_partition = ?",
                updates,
            )
        self._applied_position = max([self._applied_position, *(u[1] for u in updates)])
        if behind:  # another member applied these already: skip ahead to where it stopped
            log.info("skipping %d messages applied by another member", stale)
            self._seek({TopicPartition(self.topic, p): o for p, o in behind.items()})
        return KafkaBatchResult(sum(map(len, by_partition.values())), len(events), stale)

    def _lock_offsets(self, cursor: SqlCursor, partitions: list[int]) -> dict[int, tuple[int, int]]:
        """Lock (creating if needed) the offset rows of ``partitions``; return them."""
        cursor.executemany(
            f"INSERT INTO {OFFSETS_TABLE} (group_id, topic, kafka_partition, next_offset, "
            "position) VALUES (?, ?, ?, 0, 0) ON CONFLICT (group_id, topic, kafka_partition) "
            f"DO UPDATE SET next_offset = {OFFSETS_TABLE}.next_offset",
            [(self.group, self.topic, partition) for partition in partitions],
        )
        return self._stored_offsets(cursor, partitions)

    def _stored_offsets(
        self, cursor: SqlCursor, partitions: list[int]
    ) -> dict[int, tuple[int, int]]:
        marks = ", ".join("?" * len(partitions))
        cursor.execute(
            f"SELECT kafka_partition, next_offset, position FROM {OFFSETS_TABLE} "
            f"WHERE group_id = ? AND topic = ? AND kafka_partition IN ({marks})",
            [self.group, self.topic, *partitions],
        )
        found = {
            int(row["kafka_partition"]): (int(row["next_offset"]), int(row["position"]))
            for row in cursor.fetchall()
        }
        return {partition: found.get(partition, (0, 0)) for partition in partitions}

    # --- where each partition starts -------------------------------------------------------

    def note_assigned(self, partitions: Iterable[Any]) -> None:
        with self._assigned_lock:
            self._newly_assigned.update(tp for tp in partitions if tp.topic == self.topic)

    def _take_newly_assigned(self) -> set[Any]:
        with self._assigned_lock:
            taken, self._newly_assigned = self._newly_assigned, set()
        return taken

    def _stuck_rebalancing(self, consumer: Any) -> bool:
        """True after STUCK_REBALANCE_SECONDS without a stable group membership: time to
        leave and join again. A rebalance waits at most a session timeout for a dead member;
        one that lasts longer is a consumer that lost track of its own join (seen with
        kafka-python 3.0.12 on a loaded machine: the group moved on without this member, and
        it never noticed)."""
        if consumer.group_metadata().state == MemberState.STABLE:
            self._unsettled_since = None
            return False
        now = time.monotonic()
        if self._unsettled_since is None:
            self._unsettled_since = now
            return False
        if now - self._unsettled_since <= STUCK_REBALANCE_SECONDS:
            return False
        log.warning(
            "no stable group membership for %.0f s; joining again", now - self._unsettled_since
        )
        self._unsettled_since = None
        return True

    def seek_to_stored_offsets(self, partitions: Iterable[Any]) -> None:
        """Point the consumer at the stored offset of each partition (0 if none is stored)."""
        assigned = [tp for tp in partitions if tp.topic == self.topic]
        if not assigned:
            return
        with self.store.transaction(commit=False) as cursor:
            stored = self._stored_offsets(cursor, sorted(tp.partition for tp in assigned))
        log.info("partitions assigned, starting at %s", {p: o for p, (o, _) in stored.items()})
        self._seek({tp: stored[tp.partition][0] for tp in assigned})

    def _seek(self, offsets: Mapping[Any, int]) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        owned = set(consumer.assignment())
        for tp, offset in offsets.items():
            if tp in owned:
                consumer.seek(tp, offset)

    def _rewind(self) -> None:
        """After a failed batch: forget what was polled, resume from the stored offsets."""
        consumer = self._consumer
        if consumer is None:
            return
        try:
            self.seek_to_stored_offsets(consumer.assignment())
        except Exception:
            log.exception("could not rewind to the stored offsets; reconnecting")
            self.close()

    def _subscribed(self) -> Any:
        if self._consumer is None:
            consumer = self._consumer_factory()
            self._consumer = consumer
            # Know the topic's partitions before joining: a group leader without them assigns
            # nothing until its next metadata refresh.
            if not consumer.partitions_for_topic(self.topic):
                self.close()
                raise LookupError(f"topic {self.topic} has no partitions (yet)")
            consumer.subscribe([self.topic], listener=self._listener)
        return self._consumer

    # --- the read position (watermark) -----------------------------------------------------

    def read_position(self) -> int:
        """The highest log position up to which every event is in the read models."""
        relayed = self.relay_store.tracking.max_tracking_id(relay_tracking_name(self.topic)) or 0
        with self.relay_store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT kafka_partition, next_offset FROM {RELAY_OFFSETS_TABLE} WHERE topic = ?",
                [self.topic],
            )
            relay_offsets = {
                int(r["kafka_partition"]): int(r["next_offset"]) for r in cursor.fetchall()
            }
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT kafka_partition, next_offset, position FROM {OFFSETS_TABLE} "
                "WHERE group_id = ? AND topic = ?",
                [self.group, self.topic],
            )
            group = {int(r["kafka_partition"]): r for r in cursor.fetchall()}
        covered = relayed
        for partition, relay_offset in relay_offsets.items():
            consumed = group.get(partition)
            if consumed is None:
                return 0
            if int(consumed["next_offset"]) < relay_offset:
                covered = min(covered, int(consumed["position"]))
        return covered

    def advance_read_position(self) -> int:
        """Record the watermark if it moved; a concurrent member recording it too is fine."""
        position = self._read_position = self.read_position()
        if position > self.store.position(self.tracking_name):
            try:
                with self.store.transaction(commit=True) as cursor:
                    self.store.insert_tracking(cursor, Tracking(self.tracking_name, position))
            except (IntegrityError, OperationalError):
                pass  # another member got there first (or holds the lock): it moves anyway
        return position
