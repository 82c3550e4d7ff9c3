"""The analytics' statements are planned for their own parameter values, never prepared: a
prepared statement may settle on a generic plan, and for a time in stage or a visits list a
generic plan reads tens to hundreds of times more (SqlCursor.plans_each_statement)."""

from __future__ import annotations

from pathlib import Path

import psycopg

from event_store.read_model_store import ReadModelStore, SqlCursor
from projections.snapshot_reads import SnapshotReads
from tests.stores import fresh_postgres_database, settings_for

STATEMENT = "SELECT count(*) AS n FROM pg_class WHERE relname = ?"
RUNS = 8  # psycopg prepares a statement run five times on a connection


def prepared_on(connection: psycopg.Connection, *, plans_each_statement: bool) -> int:
    """How many statements the connection holds prepared after running one RUNS times."""
    with connection.cursor() as raw:
        cursor = SqlCursor(raw, "postgres")
        cursor.plans_each_statement = plans_each_statement
        for _ in range(RUNS):
            cursor.execute(STATEMENT, ["pg_class"])
            assert cursor.fetchall()[0][0] == 1
        raw.execute("SELECT count(*) FROM pg_prepared_statements")
        found = raw.fetchone()
        assert found is not None
        return int(found[0])


def test_given_a_statement_run_eight_times_when_planned_each_time_then_it_is_not_prepared() -> None:
    with fresh_postgres_database() as url:
        with psycopg.connect(url) as connection:
            assert prepared_on(connection, plans_each_statement=False) == 1
        with psycopg.connect(url) as connection:
            assert prepared_on(connection, plans_each_statement=True) == 0


def test_given_the_analytics_reads_when_they_read_then_every_cursor_plans_each_statement(
    tmp_path: Path,
) -> None:
    with settings_for("postgres", tmp_path / "var") as settings:
        store = ReadModelStore(settings.location())
        try:
            reads = SnapshotReads(store)
            flags = reads.each([lambda c: c.plans_each_statement, lambda c: c.plans_each_statement])
            with store.transaction(commit=False) as plain:
                assert plain.plans_each_statement is False
        finally:
            store.close()
    assert flags == [True, True]
