"""Two processes writing one SQLite read-model file take turns: a write transaction holds the
write lock from its start, so one that reads before it writes is not failed by a commit of
the other in between (WAL mode fails a stale snapshot's first write at once, unqueued)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from event_store.location import StoreLocation
from event_store.read_model_store import ReadModelStore

OTHER_WRITER_TRIES_FOR = 0.3  # seconds the first transaction leaves the other to try its write


def test_given_a_write_transaction_that_has_read_when_another_writer_commits_then_both_commit(
    tmp_path: Path,
) -> None:
    # Two stores are two connection pools, as two processes have: no in-process interlock.
    first, other = ReadModelStore(StoreLocation(tmp_path)), ReadModelStore(StoreLocation(tmp_path))
    with first.transaction(commit=True) as cursor:
        cursor.execute("CREATE TABLE written (writer TEXT NOT NULL)")
    first_has_read = threading.Event()
    failures: list[BaseException] = []

    def write_beside() -> None:
        first_has_read.wait(timeout=10)
        try:
            with other.transaction(commit=True) as cursor:
                cursor.execute("INSERT INTO written VALUES ('other')")
        except BaseException as error:
            failures.append(error)

    beside = threading.Thread(target=write_beside)
    beside.start()
    try:
        with first.transaction(commit=True) as cursor:
            cursor.execute("SELECT COUNT(*) AS n FROM written")
            counted = cursor.fetchone()
            first_has_read.set()
            time.sleep(OTHER_WRITER_TRIES_FOR)
            cursor.execute("INSERT INTO written VALUES ('first')")
    finally:
        first_has_read.set()
        beside.join(timeout=30)

    assert counted is not None
    assert counted["n"] == 0
    assert failures == []
    with first.transaction(commit=False) as cursor:
        cursor.execute("SELECT writer FROM written ORDER BY rowid")
        assert [row["writer"] for row in cursor.fetchall()] == ["first", "other"]
    first.close()
    other.close()
