"""The audit's key is a unique index that a bulk load on PostgreSQL builds at its end, like the
secondary indexes; an audit stored by an earlier release, with a primary key instead, gets the
new key when the tables are next made, and a redelivered event is still recorded once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crm.settings import Settings
from event_store.read_model_store import ReadModelStore
from projections.audit import AUDIT_KEY, AUDIT_TABLE, EARLIER_PRIMARY_KEY, AuditProjection
from projections.read_models import ReadModels
from tests.replay.test_bulk_load import a_book_to_load, index_names, rows_of
from tests.stores import settings_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """PostgreSQL only: SQLite cannot drop a primary key, and its bulk loads keep the key."""
    with settings_for("postgres", tmp_path / "var") as configured:
        yield configured


def as_stored_with_a_primary_key(store: ReadModelStore) -> None:
    """The audit as an earlier release left it: keyed by its primary key."""
    with store.transaction(commit=True) as cursor:
        cursor.execute(f"DROP INDEX {AUDIT_KEY}")
        cursor.execute(
            f"ALTER TABLE {AUDIT_TABLE} ADD CONSTRAINT {EARLIER_PRIMARY_KEY} "
            "PRIMARY KEY (record_id, version)"
        )


def constraints_of(store: ReadModelStore) -> set[str]:
    with store.transaction(commit=False) as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint "
            "WHERE connamespace = CAST(current_schema() AS regnamespace) "
            "AND conrelid = CAST(? AS regclass)",
            [AUDIT_TABLE],
        )
        return {str(row["conname"]) for row in cursor.fetchall()}


def test_given_a_bulk_load_on_postgresql_when_it_drops_its_indexes_then_the_audit_key_goes_too(
    settings: Settings,
) -> None:
    with a_book_to_load(settings) as loads:
        models = ReadModels(loads.bulk)
        models.create_tables()

        models.drop_secondary_indexes()

        assert AUDIT_KEY in models.secondary_indexes()
        assert AUDIT_KEY not in index_names(loads.bulk)
        loads.bulk_worker(partitions=2).catch_up()
        assert AUDIT_KEY in index_names(loads.bulk)


def test_given_an_audit_stored_with_a_primary_key_when_the_tables_are_made_then_the_key_replaces_it(
    settings: Settings,
) -> None:
    with a_book_to_load(settings) as loads:
        loads.catch_up_batch_by_batch()
        stored = rows_of(loads.batched, AUDIT_TABLE, "record_id, version")
        expected_indexes = index_names(loads.batched)
        as_stored_with_a_primary_key(loads.batched)
        assert EARLIER_PRIMARY_KEY in constraints_of(loads.batched)

        ReadModels(loads.batched).create_tables()
        ReadModels(loads.batched).create_tables()  # a second start finds nothing to change

        assert EARLIER_PRIMARY_KEY not in constraints_of(loads.batched)
        assert index_names(loads.batched) == expected_indexes
        assert rows_of(loads.batched, AUDIT_TABLE, "record_id, version") == stored
        events = loads.app.recorder.select_notifications(start=1, limit=loads.head)
        redelivered = [loads.app.mapper.to_domain_event(n) for n in events]
        with loads.batched.transaction(commit=True) as cursor:
            AuditProjection().process(cursor, redelivered)
        assert rows_of(loads.batched, AUDIT_TABLE, "record_id, version") == stored
