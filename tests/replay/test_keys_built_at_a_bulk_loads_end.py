"""The keys of the audit and of what a bulk load's end derives are unique indexes that a bulk
load on PostgreSQL builds at its end, like the secondary indexes (:mod:`projections.keys`).
Tables stored by an earlier release, with primary keys instead, get the new keys when the
tables are next made; a redelivered event is still recorded once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crm.settings import Settings
from event_store.read_model_store import ReadModelStore
from projections.audit import AUDIT_TABLE, AuditProjection
from projections.keys import earlier_primary_key, key_name
from projections.read_models import KEYED_AT_END, ReadModels
from projections.stage_conversion import ENTRIES_TABLE
from projections.stage_durations import ALL_TIME_KEY, ALL_TIME_TABLE, DURATION_KEY, DURATIONS_TABLE
from tests.replay.test_bulk_load import a_book_to_load, index_names, rows_of
from tests.stores import settings_for

pytestmark = pytest.mark.postgres

KEYS = {
    AUDIT_TABLE: ("record_id", "version"),
    ENTRIES_TABLE: ("id", "visit_no"),
    DURATIONS_TABLE: DURATION_KEY,
    ALL_TIME_TABLE: ALL_TIME_KEY,
}


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """PostgreSQL only: SQLite cannot drop a primary key, and its bulk loads keep the keys."""
    with settings_for("postgres", tmp_path / "var") as configured:
        yield configured


def as_stored_with_primary_keys(store: ReadModelStore) -> None:
    """The tables as an earlier release left them: keyed by their primary keys."""
    with store.transaction(commit=True) as cursor:
        for table, columns in KEYS.items():
            cursor.execute(f"DROP INDEX {key_name(table)}")
            cursor.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {earlier_primary_key(table)} "
                f"PRIMARY KEY ({', '.join(columns)})"
            )


def constraints_of(store: ReadModelStore) -> set[str]:
    with store.transaction(commit=False) as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint "
            "WHERE connamespace = CAST(current_schema() AS regnamespace)"
        )
        return {str(row["conname"]) for row in cursor.fetchall()}


def stored(store: ReadModelStore) -> dict[str, list[dict[str, object]]]:
    return {table: rows_of(store, table, ", ".join(columns)) for table, columns in KEYS.items()}


def test_the_keys_built_at_a_bulk_loads_end_are_those_of_the_tables_named_for_it() -> None:
    assert set(KEYS) == set(KEYED_AT_END)


def test_given_a_bulk_load_on_postgresql_when_it_drops_its_indexes_then_the_keys_go_too(
    settings: Settings,
) -> None:
    with a_book_to_load(settings) as loads:
        models = ReadModels(loads.bulk)
        models.create_tables()
        keys = {key_name(table) for table in KEYS}

        models.drop_secondary_indexes()

        assert keys <= set(models.secondary_indexes())
        assert keys & index_names(loads.bulk) == set()
        loads.bulk_worker(partitions=2).catch_up()
        loads.catch_up_batch_by_batch()
        assert keys <= index_names(loads.bulk)
        assert stored(loads.bulk) == stored(loads.batched)


def test_given_tables_stored_with_primary_keys_when_the_tables_are_made_then_keys_replace_them(
    settings: Settings,
) -> None:
    with a_book_to_load(settings) as loads:
        loads.catch_up_batch_by_batch()
        rows = stored(loads.batched)
        expected_indexes = index_names(loads.batched)
        as_stored_with_primary_keys(loads.batched)
        earlier = {earlier_primary_key(table) for table in KEYS}
        assert earlier <= constraints_of(loads.batched)

        ReadModels(loads.batched).create_tables()
        ReadModels(loads.batched).create_tables()  # a second start finds nothing to change

        assert earlier & constraints_of(loads.batched) == set()
        assert index_names(loads.batched) == expected_indexes
        assert stored(loads.batched) == rows
        events = loads.app.recorder.select_notifications(start=1, limit=loads.head)
        redelivered = [loads.app.mapper.to_domain_event(n) for n in events]
        with loads.batched.transaction(commit=True) as cursor:
            AuditProjection().process(cursor, redelivered)
        assert stored(loads.batched) == rows
