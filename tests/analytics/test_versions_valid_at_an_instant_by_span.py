"""The versions valid at an instant, read span class by span class (projections.spans), are
exactly those with valid_from ≤ T < valid_to: none missed, none twice, whatever their length."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator

import pytest

from projections.row_projection import FOREVER_US
from projections.spans import (
    SPAN_CLASS,
    SPAN_LIMITS_US,
    any_span_class,
    union_by_span,
    valid_at_by_span,
)
from projections.units import MICROS_PER_DAY as DAY_US


@pytest.fixture
def versions() -> Iterator[sqlite3.Connection]:
    """Chains of versions of many lengths — a microsecond, each class limit exactly and one
    past it, years — each chain ending in a current version, indexed as the read model is."""
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE TABLE versions (id INTEGER, version INTEGER, valid_from_us INTEGER, "
        "valid_to_us INTEGER)"
    )
    connection.execute(
        f"CREATE INDEX versions_by_span ON versions ({SPAN_CLASS}, valid_from_us, valid_to_us)"
    )
    spans = [1, DAY_US // 3, *SPAN_LIMITS_US, *(limit + 1 for limit in SPAN_LIMITS_US)]
    spans += [5 * 365 * DAY_US]
    chooser = random.Random(7)
    rows = []
    for record in range(300):
        start = chooser.randrange(0, 3 * 365 * DAY_US)
        for version in range(chooser.randrange(1, 8)):
            end = start + chooser.choice(spans)
            rows.append((record, version, start, end))
            start = end
        rows.append((record, version + 1, start, FOREVER_US))
    connection.executemany("INSERT INTO versions VALUES (?, ?, ?, ?)", rows)
    yield connection
    connection.close()


def valid_at(connection: sqlite3.Connection, instant: int) -> list[tuple[int, int]]:
    statement, params = union_by_span(
        "SELECT id, version FROM versions WHERE valid_from_us <= ? AND valid_to_us > ?",
        [instant, instant],
        valid_at_by_span(instant),
    )
    return sorted(connection.execute(statement, params).fetchall())


def test_given_versions_of_every_length_when_read_by_span_then_each_valid_one_comes_once(
    versions: sqlite3.Connection,
) -> None:
    boundaries = [row[0] for row in versions.execute("SELECT valid_from_us FROM versions")]
    instants = [*random.Random(11).sample(boundaries, 40), *(b - 1 for b in boundaries[:40])]
    instants += [0, 400 * DAY_US, 4 * 365 * DAY_US, 9 * 365 * DAY_US, FOREVER_US - 1]
    for instant in instants:
        expected = versions.execute(
            "SELECT id, version FROM versions WHERE valid_from_us <= ? AND valid_to_us > ? "
            "ORDER BY id, version",
            [instant, instant],
        ).fetchall()
        assert valid_at(versions, instant) == expected, instant
    assert any(valid_at(versions, instant) for instant in instants)
    # "Now" (the instant before forever) reads the current versions: one per record.
    assert len(valid_at(versions, FOREVER_US - 1)) == 300


def test_given_the_span_index_when_reading_one_class_then_only_its_recent_range_is_searched(
    versions: sqlite3.Connection,
) -> None:
    span, params = valid_at_by_span(400 * DAY_US)[3]
    plan = versions.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM versions WHERE valid_from_us <= ? AND "
        f"valid_to_us > ? AND {span}",
        [400 * DAY_US, 400 * DAY_US, *params],
    ).fetchall()
    assert "USING INDEX versions_by_span (<expr>=? AND valid_from_us>?" in str(plan)


def test_given_versions_of_every_length_when_naming_every_span_class_then_none_is_left_out(
    versions: sqlite3.Connection,
) -> None:
    started_in = [0, 2 * 365 * DAY_US]
    plan = versions.execute(
        "EXPLAIN QUERY PLAN SELECT id, version FROM versions "
        f"WHERE valid_from_us >= ? AND valid_from_us < ? AND {any_span_class()}",
        started_in,
    ).fetchall()
    named = versions.execute(
        "SELECT id, version FROM versions "
        f"WHERE valid_from_us >= ? AND valid_from_us < ? AND {any_span_class()} "
        "ORDER BY id, version",
        started_in,
    ).fetchall()
    every = versions.execute(
        "SELECT id, version FROM versions WHERE valid_from_us >= ? AND valid_from_us < ? "
        "ORDER BY id, version",
        started_in,
    ).fetchall()
    assert named == every
    assert {version for _, version in named} >= {0, 1}
    # A range of each class: the index led by the class serves a range of starts.
    assert "USING INDEX versions_by_span (<expr>=? AND valid_from_us>? AND valid_from_us<?)" in (
        str(plan)
    )
