"""Stage visits and conversion entries stored before they had a scope key get it when the read
models' tables are next made (a service or worker starting): the same rows, indexes and analytics
as those stored with it, and no rebuild needed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest

from crm.settings import Settings
from event_store.read_model_store import ReadModelStore
from projections.analytics import AnalyticsFilter, SalesAnalytics
from projections.deals import SCOPED_TABLES, STAGE_VISITS_TABLE
from projections.read_models import ReadModels
from projections.scope_keys import SCOPE_KEY, scope_key
from tests.replay.test_bulk_load import a_book_to_load, index_names, rows_of
from tests.stores import settings_for
from tests.unit.builders import day


def as_stored_before_scope_keys(store: ReadModelStore) -> None:
    """The visits and entries tables as an earlier release left them: no key, indexes led by
    the ids."""
    with store.transaction(commit=True) as cursor:
        for table in SCOPED_TABLES:
            for name in index_names(store):
                if name.startswith(table):
                    cursor.execute(f"DROP INDEX {name}")
            cursor.execute(f"ALTER TABLE {table} DROP COLUMN {SCOPE_KEY}")
        cursor.execute(
            f"CREATE INDEX {STAGE_VISITS_TABLE}_by_stage ON {STAGE_VISITS_TABLE} "
            "(organization_id, pipeline_id, stage, entered_at_us, left_at_us, owner_id)"
        )


def figures(store: ReadModelStore, organization_id: UUID) -> dict[str, object]:
    """What reads the visits by their scope: time in stage, conversion, the visits list."""
    analytics = SalesAnalytics(store)
    now = AnalyticsFilter(organization_id=organization_id)
    in_a_period = replace(
        now, period_from=day(1) + timedelta(hours=12), period_to=day(20), as_of=day(11)
    )
    time_now = analytics.time_in_stage(now)
    return {
        # the open visits count up to the instant read: their means move with it
        "time in stage now": [(found.stage, found.visits, found.median_days) for found in time_now],
        "time in stage as of": analytics.time_in_stage(replace(now, as_of=day(30))),
        "time in stage in a period": analytics.time_in_stage(in_a_period),
        "conversion in a period": analytics.conversion(in_a_period),
        "visits in a period": analytics.visits(in_a_period),
    }


def test_given_visits_stored_without_scope_keys_when_the_tables_are_made_then_they_read_as_new_ones(
    settings: Settings,
) -> None:
    with a_book_to_load(settings) as loads:
        loads.catch_up_batch_by_batch()
        loads.bulk_worker(partitions=1).catch_up()
        expected_indexes = index_names(loads.batched)
        as_stored_before_scope_keys(loads.bulk)
        assert SCOPE_KEY not in rows_of(loads.bulk, STAGE_VISITS_TABLE, "id, visit_no")[0]

        ReadModels(loads.bulk).create_tables()

        for table in SCOPED_TABLES:
            rows = rows_of(loads.bulk, table, "id, visit_no")
            assert rows == rows_of(loads.batched, table, "id, visit_no"), table
            assert all(
                row[SCOPE_KEY] == scope_key(str(row["organization_id"]), str(row["pipeline_id"]))
                for row in rows
            ), table
        visits = rows_of(loads.bulk, STAGE_VISITS_TABLE, "id, visit_no")
        assert index_names(loads.bulk) == expected_indexes
        assert f"{STAGE_VISITS_TABLE}_by_stage" not in index_names(loads.bulk)
        organization_id = UUID(str(visits[0]["organization_id"]))
        found = figures(loads.bulk, organization_id)
        assert found == figures(loads.batched, organization_id)
        assert found["conversion in a period"]
        assert found["visits in a period"]


def test_given_a_pipeline_when_keyed_then_its_key_is_the_one_every_release_computes() -> None:
    organization_id = "00000000-0000-4000-8000-000000000001"

    key = scope_key(organization_id, "default")

    # Stored keys outlive the code that wrote them: the function may never change.
    assert key == -2476207842385417464
    assert -(2**63) <= key < 2**63
    assert key != scope_key(organization_id, "enterprise")
    assert key != scope_key("00000000-0000-4000-8000-000000000002", "default")
    assert scope_key("a", "bc") != scope_key("ab", "c")


@pytest.mark.postgres
def test_given_postgres_when_the_tables_are_made_then_the_planner_learns_what_each_key_decides(
    tmp_path: Path,
) -> None:
    with settings_for("postgres", tmp_path / "var") as settings:
        store = ReadModelStore(settings.location(), 2)
        try:
            ReadModels(store).create_tables()
            ReadModels(store).create_tables()  # again, as every start does

            with store.transaction(commit=False) as cursor:
                cursor.execute(
                    "SELECT stxname AS name, stxkind AS kinds, array_length(stxkeys, 1) AS columns "
                    "FROM pg_statistic_ext WHERE stxnamespace = current_schema()::regnamespace"
                )
                found = {
                    row["name"]: (list(row["kinds"]), row["columns"]) for row in cursor.fetchall()
                }
        finally:
            store.destroy()
    # dependencies among the key, the organization and the pipeline
    assert found == {f"{table}_scope": (["f"], 3) for table in SCOPED_TABLES}
