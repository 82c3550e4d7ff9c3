"""The projection worker: follows the event log in batches and keeps the read models exact.

Exactly once: each batch's read-model changes and its tracking record commit in one
transaction, the tracking record written first so that a second worker on the same database
blocks on it and then fails instead of counting the batch twice. A worker killed anywhere
leaves either the whole batch or none of it, and resumes from the tracked position.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError, OperationalError, Tracking

from event_store.application import EventStoreApplication
from event_store.location import StoreLocation
from event_store.read_model_store import ReadModelStore, is_deadlock
from projections.garbage import collecting_rarely
from projections.generations import Generations
from projections.partitions import Partition, PartitionProgress, run_partitions
from projections.read_models import ReadModels

log = logging.getLogger(__name__)

TRACKING_NAME = "read_models"
IDLE_POLL_SECONDS = 1.0
LIVE_CHECK_SECONDS = 1.0  # how often a following worker asks which generation is live
BULK_LOAD_EVENTS = 50_000  # a catch-up from empty over at least this many events: a bulk load
BULK_LOAD_PROCESSES = 2  # a bulk load on PostgreSQL: one process per partition of the records
BULK_LOAD_BATCH_SIZE = 20_000  # a bulk load's batches hold at least this many events: fewer,
# larger transactions and COPYs, a record loaded and rewritten less often (on the bench's book:
# 1,000 → 5,000: 8,300 → 9,600 events/s; 5,000 → 20,000: the fold 18.3 → 17.2 s)


@dataclass(frozen=True)
class Batch:
    start: int
    last: int
    notifications: int
    events: list[DomainEventProtocol[UUID]]


@dataclass(frozen=True)
class BatchResult:
    notifications: int
    events_applied: int
    position: int


class ProjectionWorker:
    """Feeds the read models from the event store, ``batch_size`` events per transaction."""

    def __init__(
        self,
        events: EventStoreApplication,
        store: ReadModelStore,
        *,
        batch_size: int = 1000,
        tracking_name: str = TRACKING_NAME,
        follow_live: Generations | None = None,
        bulk_load_events: int = BULK_LOAD_EVENTS,
        gather_seconds: float = 0.0,
        partitions: int = BULK_LOAD_PROCESSES,
        bulk_load_batch_size: int = BULK_LOAD_BATCH_SIZE,
        create_tables: bool = True,
    ) -> None:
        """With ``follow_live``, the worker moves to whichever generation is live at the
        start of each batch (a rebuild elsewhere may switch it). With ``partitions`` > 1, a
        bulk load on PostgreSQL runs in that many processes (:mod:`projections.partitions`).
        A bulk load reads at least ``bulk_load_batch_size`` events per batch."""
        self.events = events
        self.batch_size = batch_size
        self.bulk_load_batch_size = max(batch_size, bulk_load_batch_size)
        self.tracking_name = tracking_name
        self.follow_live = follow_live
        self.bulk_load_events = bulk_load_events
        self.gather_seconds = gather_seconds
        self.partitions = partitions
        self.partition: Partition | None = None
        """Set in a partition's process: only its share of the records is folded."""
        self._bulk_loading = False
        self._deriving_at_end = False
        self.wakeup = threading.Event()
        self._hurry = threading.Event()
        """Set by a reader waiting for a position: ends the gathering wait at once."""
        self._progress = threading.Condition()
        self._stores: dict[int, ReadModelStore] = {}
        self.last_position = 0
        self.use(store, create_tables=create_tables)

    def use(self, store: ReadModelStore, *, create_tables: bool = True) -> None:
        """Feed this generation's store from now on."""
        self._stores.setdefault(store.generation, store)
        self.store = store
        self.read_models = ReadModels(store)
        if create_tables:
            self.read_models.create_tables()
        self.last_position = store.position(self.tracking_name)

    def follow_live_generation(self) -> None:
        if self.follow_live is None:
            return
        live = self.follow_live.live().number
        if live != self.store.generation:
            log.info("read models: generation %d is live now", live)
            store = self._stores.get(live) or ReadModelStore(self.store.location, live)
            self.use(store)

    @property
    def position(self) -> int:
        return self.store.position(self.tracking_name)

    @property
    def _read_limit(self) -> int:
        return self.bulk_load_batch_size if self._bulk_loading else self.batch_size

    def read_batch(self, start: int) -> Batch:
        """The notifications after ``start`` and the projected events among them, decoded."""
        notifications = self.events.recorder.select_notifications(
            start=start, limit=self._read_limit, inclusive_of_start=False
        )
        to_event, projected = self.events.mapper.to_domain_event, ReadModels.is_projected
        return Batch(
            start,
            notifications[-1].id if notifications else start,
            len(notifications),
            [to_event(n) for n in notifications if projected(n.topic)],
        )

    def _read_share(self, partition: Partition, start: int, head: int) -> Batch:
        """A partition's share of the positions after ``start`` (a batch's worth, up to
        ``head``), filtered by PostgreSQL: the other partitions' events are neither sent
        nor turned into notifications here (half the reading, with two). The batch counts
        the positions it covers."""
        last = min(start + self._read_limit, head)
        to_event, projected = self.events.mapper.to_domain_event, ReadModels.is_projected
        shared = self.events.select_notifications_where(start, last, partition.condition_sql())
        return Batch(start, last, last - start, [to_event(n) for n in shared if projected(n.topic)])

    def apply(self, batch: Batch) -> BatchResult:
        """Fold a batch read after the tracked position into the read models, exactly once."""
        if batch.notifications:
            with self.store.transaction(commit=True) as cursor:
                cursor.appends_only = self._bulk_loading
                cursor.derived_at_end = self._deriving_at_end
                self.store.insert_tracking(cursor, Tracking(self.tracking_name, batch.last))
                self.read_models.apply(cursor, batch.events)
            self.last_position = batch.last
            with self._progress:
                self._progress.notify_all()
        return BatchResult(batch.notifications, len(batch.events), batch.last)

    def reset(self) -> None:
        """Empty every read model and forget the position, in one transaction."""
        with self.store.transaction(commit=True) as cursor:
            self.read_models.clear(cursor)
            self.store.forget_position(cursor, self.tracking_name)

    def catch_up(self, on_batch: Callable[[BatchResult], None] | None = None) -> int:
        """Process batches until the log's head as it was when called; return events seen.

        The next batch is read and decoded in a second thread while this one is written:
        the database works on one while Python works on the other. From an empty store
        over a long log, the indexes reads need are built once at the end, and append-only
        rows go straight into their tables (see :attr:`SqlCursor.appends_only`)."""
        self.follow_live_generation()
        head = self.events.head_position()
        start = self.position
        bulk_load = start == 0 and head >= self.bulk_load_events
        if bulk_load:
            self.read_models.drop_secondary_indexes()
            self._mark_bulk_load_unfinished()
        self._bulk_loading = bulk_load
        self._deriving_at_end = bulk_load or self.bulk_load_unfinished
        finished = False
        try:
            with collecting_rarely() if self._deriving_at_end else nullcontext():
                if bulk_load and self.partitions > 1 and self._all_on_postgres:
                    seen = self._catch_up_in_partitions(head, on_batch)
                else:
                    seen = self._catch_up(start, head, on_batch)
                if bulk_load:
                    self.read_models.finish_bulk_load(derive=self._derive_at_end)
                    finished = True
                elif self._deriving_at_end:
                    self._derive_at_end()
            return seen
        finally:
            self._bulk_loading = False
            self._deriving_at_end = False
            if bulk_load and not finished:  # reads of what was loaded need the indexes
                self.read_models.build_secondary_indexes()

    @property
    def _all_on_postgres(self) -> bool:
        """Partitions read their shares through PostgreSQL and write side by side into it."""
        return self.store.dialect == "postgres" and self.events.location.is_postgres

    @property
    def _unfinished_name(self) -> str:
        return f"{self.tracking_name}:bulk-load-unfinished"

    @property
    def bulk_load_unfinished(self) -> bool:
        """A bulk load began and has not yet derived what it leaves to its end: a catch-up
        (however it resumes) derives it when it reaches the head."""
        return self.store.position(self._unfinished_name) > 0

    def _mark_bulk_load_unfinished(self) -> None:
        with self.store.transaction(commit=True) as cursor:
            self.store.forget_position(cursor, self._unfinished_name)
            self.store.insert_tracking(cursor, Tracking(self._unfinished_name, 1))

    def _derive_at_end(self) -> None:
        """Derive what the batches left, then forget the mark; on PostgreSQL in a process
        per partition of the records (a share each, adding to the same counts). Until the
        mark is forgotten, a catch-up clears it all and derives it again."""
        if self.partitions > 1 and self.store.dialect == "postgres":
            with self.store.transaction(commit=True) as cursor:
                self.read_models.clear_derived(cursor)
            run_partitions(
                derive_partition,
                (self.store.location, self.store.generation),
                self.partitions,
                lambda progress: None,
            )
            with self.store.transaction(commit=True) as cursor:
                self.store.forget_position(cursor, self._unfinished_name)
            return
        with self.store.transaction(commit=True) as cursor:
            self.read_models.clear_derived(cursor)
            self.read_models.derive(cursor)
            self.store.forget_position(cursor, self._unfinished_name)

    def _catch_up(
        self, start: int, head: int, on_batch: Callable[[BatchResult], None] | None
    ) -> int:
        seen = 0
        read: Callable[[int], Batch] = (
            self.read_batch
            if self.partition is None
            else partial(self._read_share, self.partition, head=head)
        )
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as reader:
            upcoming = reader.submit(read, start)
            while start < head:
                batch = upcoming.result()
                if batch.notifications == 0:
                    break
                upcoming = reader.submit(read, batch.last)
                result = self.apply(batch)
                seen += result.notifications
                if on_batch is not None:
                    on_batch(result)
                start = self.position
                if start != batch.last:  # another worker moved on: read from where it stopped
                    upcoming.cancel()
                    upcoming = reader.submit(read, start)
        return seen

    def _catch_up_in_partitions(
        self, head: int, on_batch: Callable[[BatchResult], None] | None
    ) -> int:
        """A bulk load folded by one process per :class:`Partition`, each at its own
        tracked position (a load stopped midway resumes each where it was); then this
        worker's position moves to ``head`` and the partitions' positions are forgotten."""
        names = [
            Partition(n, self.partitions).tracking_name(self.tracking_name)
            for n in range(self.partitions)
        ]
        start = min(self.store.position(name) for name in names)

        def report(progress: PartitionProgress) -> None:
            if on_batch is not None:
                on_batch(BatchResult(progress.notifications, progress.events, progress.position))

        run_partitions(
            fold_partition,
            (
                self.events.location,
                self.store.location,
                self.store.generation,
                self.bulk_load_batch_size,
                self.tracking_name,
                head,
            ),
            self.partitions,
            report,
        )
        with self.store.transaction(commit=True) as cursor:
            self.store.insert_tracking(cursor, Tracking(self.tracking_name, head))
            for name in names:
                self.store.forget_position(cursor, name)
        self.last_position = head
        with self._progress:
            self._progress.notify_all()
        return head - start

    def run(self, stop: threading.Event) -> None:
        """Follow the log until ``stop`` is set, sleeping on :attr:`wakeup` when caught up.

        Each batch starts where this worker's last one ended, and the live generation is
        looked up at most once a second: a busy worker makes no query for either. The
        position is read again after any failure — a batch another worker recorded first
        fails its tracking write — and on a generation switch."""
        reload, checked = True, -LIVE_CHECK_SECONDS
        if self.bulk_load_unfinished:
            self.catch_up()  # batch by batch, it would keep no stage conversion counts
        while not stop.is_set():
            self.wakeup.clear()
            try:
                if time.monotonic() - checked >= LIVE_CHECK_SECONDS:
                    self.follow_live_generation()  # a switch reloads the position
                    checked = time.monotonic()
                if reload:
                    self.last_position, reload = self.position, False
                result = self.apply(self.read_batch(self.last_position))
            except IntegrityError:
                log.info("another worker recorded this batch first; reloading the position")
                reload = True
                continue
            except Exception:
                log.exception("projection batch failed; retrying in a second")
                reload = True
                stop.wait(1.0)
                continue
            if result.notifications == 0:
                self.wakeup.wait(IDLE_POLL_SECONDS)
            elif result.notifications < self.batch_size and self.gather_seconds:
                # Busy but not behind: let a few more saves arrive first, so that a steady
                # stream of commands makes fewer, larger batches (each is a transaction and
                # some 20 statements, ≈ 3 ms of CPU before its first event). The first event
                # after a quiet spell still goes at once, and so does the batch a reader
                # waits for (wait_for).
                self._hurry.wait(self.gather_seconds)
                self._hurry.clear()

    def hurry(self) -> None:
        """End the wait for more events after a partial batch now (if it is waiting)."""
        self._hurry.set()

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until the read models include ``position`` or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        if self.last_position < position:
            self.hurry()
        with self._progress:
            while self.last_position < position:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.05))
        return True


def fold_partition(
    event_store: StoreLocation,
    read_models: StoreLocation,
    generation: int,
    batch_size: int,
    tracking_name: str,
    head: int,
    partition: Partition,
    report: Callable[[PartitionProgress], None],
) -> None:
    """A partition's process: fold its share of the log up to ``head`` into an empty
    generation whose secondary indexes the parent dropped (it builds them at the end).

    Partitions add to the same summary rows, so two batches can deadlock on them;
    PostgreSQL then rolls one back, and that batch is folded again."""
    events = EventStoreApplication(event_store)
    store = ReadModelStore(read_models, generation)
    try:
        worker = ProjectionWorker(
            events,
            store,
            batch_size=batch_size,
            bulk_load_batch_size=batch_size,
            tracking_name=partition.tracking_name(tracking_name),
            create_tables=False,  # the parent builds the secondary indexes at the end
        )
        worker.partition = partition
        worker._bulk_loading = True
        worker._deriving_at_end = True
        while worker.position < head:
            try:
                worker._catch_up(
                    worker.position,
                    head,
                    lambda result: report(
                        PartitionProgress(
                            partition.number,
                            result.position,
                            result.notifications,
                            result.events_applied,
                        )
                    ),
                )
            except OperationalError as error:
                if not is_deadlock(error):
                    raise
                log.info("partition %d: a batch deadlocked; folding it again", partition.number)
    finally:
        store.close()
        events.close()


def derive_partition(
    read_models: StoreLocation,
    generation: int,
    partition: Partition,
    report: Callable[[PartitionProgress], None],
) -> None:
    """A partition's process at the end of a bulk load: derive its share of the records."""
    store = ReadModelStore(read_models, generation)
    try:
        with store.transaction(commit=True) as cursor:
            ReadModels(store).derive(cursor, partition.number, partition.count)
    finally:
        store.close()
