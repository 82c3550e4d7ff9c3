"""``created`` tries a build again when it lost a race for SQLite's lock — the error another
process starting beside it causes — and fails at once on any other error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crm.startup import created


def test_given_a_build_that_finds_the_file_locked_when_created_then_it_is_tried_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.sqlite"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE started (n INTEGER)")
    other.execute("BEGIN IMMEDIATE")  # as a process creating the same schema would hold it
    attempts: list[str] = []

    def build() -> str:
        connection = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO started VALUES (1)")
            connection.execute("COMMIT")
        except sqlite3.OperationalError as error:
            attempts.append(str(error))
            other.execute("COMMIT")  # the other process is done before the next try
            raise
        finally:
            connection.close()
        attempts.append("built")
        return "built"

    assert created(build) == "built"
    assert attempts == ["database is locked", "built"]
    other.close()


def test_given_a_build_that_fails_otherwise_when_created_then_it_fails_at_once() -> None:
    attempts: list[int] = []

    def build() -> None:
        attempts.append(1)
        sqlite3.connect(":memory:").execute("SELECT n FROM missing")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        created(build)
    assert attempts == [1]
