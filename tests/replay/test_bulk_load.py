"""A catch-up from empty read models over a long log drops the indexes no write needs and
builds them once at the end: the same rows as a catch-up batch by batch, every index there."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from aggregates.client import Client
from aggregates.deal import Deal
from commands.service import CrmApplication
from crm.settings import Settings
from event_store.read_model_store import ReadModelStore
from projections.partitions import Partition, PartitionProgress
from projections.read_models import ANALYZED_ONLY, ReadModels
from projections.worker import BatchResult, ProjectionWorker, fold_partition
from tests.stores import settings_for
from tests.unit.builders import at, day

DEALS = 40
COMPARED_TABLES = (
    ("rm_deals", "id"),
    ("rm_deals_history", "id, version"),
    ("rm_stage_visits", "id, visit_no"),
    ("rm_stage_entries", "id, visit_no"),
    (
        "rm_stage_conversions",
        "pipeline_id, by_owner, owner_key, stage, entered_month_us, converted_month_us",
    ),
    (
        "rm_stage_transitions",
        "pipeline_id, by_owner, owner_key, from_stage, stage, entered_month_us",
    ),
    (
        "rm_stage_durations",
        "pipeline_id, by_owner, owner_key, stage, entered_month_us, left_month_us, bucket",
    ),
    ("rm_stage_durations_all_time", "pipeline_id, by_owner, owner_key, stage, bucket"),
    ("rm_pipeline_value", "pipeline_id, owner_key, stage, currency, expected_close_date"),
    ("rm_pipeline_totals", "pipeline_id, owner_key, stage, currency"),
    ("rm_forecast_open", "pipeline_id, owner_key, currency, close_month"),
    (
        "rm_closed_by_month",
        "breakdown, pipeline_id, status, owner_key, close_month_us, currency, keyed, key_value",
    ),
    ("rm_audit", "record_id, version"),
    ("rm_clients", "id"),
)


def record_a_book(app: CrmApplication) -> int:
    """Clients and deals walked through their stages, won and lost; the log's head."""
    client = Client(name="Acme", category="prospect", status="active", details={},
                    context=at(day(0)))  # fmt: skip
    deals = []
    for n in range(DEALS):
        deal = Deal.open(
            name=f"Deal {n}", client_id=client.id, value=Decimal(1000 + n), currency="EUR",
            expected_close_date=day(30 + n).date(),
            owner_id=None if n % 7 == 6 else f"owner-{n % 3}", context=at(day(1)),
        )  # fmt: skip
        for step, stage in enumerate(("qualified", "proposal", "qualified")[: n % 4]):
            deal.change_stage(stage, None, at(day(2 + step)))
        if n % 5 == 0:
            deal.win(at(day(10)))
        elif n % 5 == 1:
            deal.lose("price", None, at(day(11)))
        elif n % 9 == 2:
            deal.archive(at(day(12)))
        deals.append(deal)
    app.save(client, *deals)
    return app.head_position()


def index_names(store: ReadModelStore) -> set[str]:
    with store.transaction(commit=False) as cursor:
        if store.dialect == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql NOT NULL")
            return {row["name"] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT indexname AS name FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexname NOT LIKE '%pkey'"
        )
        return {row["name"] for row in cursor.fetchall()}


def tables_maintained(store: ReadModelStore) -> tuple[set[str], set[str]]:
    """On PostgreSQL, the read-model tables vacuumed, and those analyzed, since made (by
    hand: not by autovacuum)."""
    with store.transaction(commit=False) as cursor:
        cursor.execute(
            "SELECT relname, last_vacuum IS NOT NULL AS vacuumed, "
            "last_analyze IS NOT NULL AS analyzed "
            "FROM pg_stat_user_tables WHERE schemaname = current_schema()"
        )
        rows = cursor.fetchall()
    return (
        {row["relname"] for row in rows if row["vacuumed"]},
        {row["relname"] for row in rows if row["analyzed"]},
    )


def rows_of(store: ReadModelStore, table: str, order: str) -> list[dict[str, object]]:
    with store.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT * FROM {table} ORDER BY {order}")
        return [dict(row) for row in cursor.fetchall()]


@dataclass
class Loads:
    """A recorded book, read models to load in bulk, and others to catch up batch by batch."""

    app: CrmApplication
    head: int
    bulk: ReadModelStore
    batched: ReadModelStore

    def bulk_worker(
        self, partitions: int, batch_size: int = 25, bulk_load_batch_size: int = 25
    ) -> ProjectionWorker:
        """A worker that loads in bulk from the first event on, in small batches."""
        return ProjectionWorker(
            self.app,
            self.bulk,
            batch_size=batch_size,
            bulk_load_batch_size=bulk_load_batch_size,
            bulk_load_events=1,
            partitions=partitions,
        )

    def catch_up_batch_by_batch(self) -> None:
        ProjectionWorker(
            self.app, self.batched, batch_size=25, bulk_load_events=self.head + 1
        ).catch_up()

    def assert_rows_match(self) -> None:
        for table, order in COMPARED_TABLES:
            assert rows_of(self.bulk, table, order) == rows_of(self.batched, table, order), table


@contextmanager
def a_book_to_load(settings: Settings) -> Iterator[Loads]:
    location = settings.location()
    app = CrmApplication(location)
    head = record_a_book(app)
    bulk, batched = ReadModelStore(location, 2), ReadModelStore(location, 3)
    try:
        yield Loads(app, head, bulk, batched)
    finally:
        bulk.destroy()
        batched.destroy()
        app.close()


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_given_empty_read_models_when_a_long_log_is_caught_up_in_bulk_then_rows_match_and_every_index_is_built(  # noqa: E501
    settings: Settings, processes: int
) -> None:
    with a_book_to_load(settings) as loads:
        ReadModels(loads.bulk).create_tables()
        expected_indexes = index_names(loads.bulk)
        bulk_worker = loads.bulk_worker(processes)

        seen = bulk_worker.catch_up()
        loads.catch_up_batch_by_batch()

        assert seen == loads.head
        assert bulk_worker.position == loads.head
        assert index_names(loads.bulk) == expected_indexes
        assert set(ReadModels(loads.bulk).secondary_indexes()) <= expected_indexes
        if loads.bulk.dialect == "postgres":
            tables = set(ReadModels(loads.bulk).tables())
            vacuumed, analyzed = tables_maintained(loads.bulk)
            assert analyzed >= tables
            assert vacuumed & tables == tables - ANALYZED_ONLY
        loads.assert_rows_match()
        assert len(rows_of(loads.bulk, "rm_deals", "id")) == DEALS


def test_given_a_bulk_load_stopped_without_its_indexes_when_a_worker_starts_then_it_builds_them(
    settings: Settings,
) -> None:
    location = settings.location()
    app = CrmApplication(location)
    store = ReadModelStore(location, 2)
    try:
        ReadModels(store).create_tables()
        expected = index_names(store)
        ReadModels(store).drop_secondary_indexes()
        assert index_names(store) < expected

        ProjectionWorker(app, store)

        assert index_names(store) == expected
    finally:
        store.destroy()
        app.close()


@pytest.mark.postgres
def test_given_a_partitioned_bulk_load_stopped_midway_when_caught_up_again_then_each_partition_resumes_and_rows_match(  # noqa: E501
    tmp_path: Path,
) -> None:
    with settings_for("postgres", tmp_path / "var") as settings:
        given_a_partitioned_bulk_load_stopped_midway(settings)


def given_a_partitioned_bulk_load_stopped_midway(settings: Settings) -> None:
    with a_book_to_load(settings) as loads:
        head = loads.head
        worker = loads.bulk_worker(2)
        worker.read_models.drop_secondary_indexes()
        reported: list[PartitionProgress] = []
        # The first partition got halfway before the load stopped; the second never began.
        location = settings.location()
        fold_partition(location, location, 2, 25, "read_models", head // 2, Partition(0, 2),
                       reported.append)  # fmt: skip

        resumed: list[BatchResult] = []
        seen = worker.catch_up(on_batch=resumed.append)
        loads.catch_up_batch_by_batch()

        stopped_at = reported[-1].position
        assert head // 2 <= stopped_at < head
        # Each partition read on from its own position: the first did not start over.
        assert sum(result.notifications for result in resumed) == (head - stopped_at) + head
        assert seen == head
        assert worker.position == head
        assert loads.bulk.position("read_models@0/2") == loads.bulk.position("read_models@1/2")
        assert loads.bulk.position("read_models@0/2") == 0
        loads.assert_rows_match()


def test_given_a_small_live_batch_size_when_a_long_log_is_caught_up_in_bulk_then_it_reads_the_larger_bulk_batches(  # noqa: E501
    settings: Settings,
) -> None:
    with a_book_to_load(settings) as loads:
        worker = loads.bulk_worker(1, batch_size=10, bulk_load_batch_size=40)
        batches: list[BatchResult] = []

        worker.catch_up(on_batch=batches.append)

        assert loads.head > 80
        assert [batch.notifications for batch in batches[:-1]] == [40] * (len(batches) - 1)
        assert 0 < batches[-1].notifications <= 40
        assert sum(batch.notifications for batch in batches) == loads.head


class StopTheLoad(Exception):
    pass


def test_given_a_bulk_load_stopped_midway_when_caught_up_again_batch_by_batch_then_what_it_left_to_its_end_is_derived(  # noqa: E501
    settings: Settings,
) -> None:
    with a_book_to_load(settings) as loads:
        worker = loads.bulk_worker(1)

        def stop_after_the_first_batch(result: BatchResult) -> None:
            raise StopTheLoad

        with pytest.raises(StopTheLoad):
            worker.catch_up(on_batch=stop_after_the_first_batch)
        assert 0 < worker.position < loads.head
        assert worker.bulk_load_unfinished
        assert rows_of(loads.bulk, "rm_stage_entries", "id, visit_no") == []  # left to the end

        resumed = loads.bulk_worker(1)
        resumed.catch_up()
        loads.catch_up_batch_by_batch()

        assert not resumed.bulk_load_unfinished
        assert rows_of(loads.bulk, "rm_stage_entries", "id, visit_no") != []
        loads.assert_rows_match()
