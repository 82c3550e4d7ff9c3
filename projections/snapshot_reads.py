"""Reading the rows of several statements from one snapshot of the read models.

An analytic often asks several statements (the open and the won deals of a forecast, each
outcome of the sales cycle). On PostgreSQL they run side by side, each on a connection of its
own, in one snapshot — one backend would read (and sort) them one after the other; otherwise
one after the other in one transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

from event_store.read_model_store import ReadModelStore, SqlCursor

T = TypeVar("T")


class SnapshotReads:
    """Statements over one read-model store, each set from one snapshot."""

    def __init__(self, store: ReadModelStore) -> None:
        self.store = store

    def query(self, statement: str, params: list[Any]) -> list[Any]:
        with self._reading() as cursor:
            return fetch_rows(statement, params, cursor)

    def side_by_side(self, statement: str, each_params: list[list[Any]]) -> list[Any]:
        """``statement`` once per parameter list, the parts side by side (:meth:`_side_by_side`)
        or else joined by UNION ALL: the same rows from one statement, one snapshot."""
        parts = self._side_by_side(
            [partial(fetch_rows, statement, params) for params in each_params]
        )
        if parts is None:
            return self.one_by_one(statement, each_params)
        return [row for rows in parts for row in rows]

    def queries(self, parts: list[tuple[str, list[Any]]]) -> list[list[Any]]:
        """Each statement's rows, all from one snapshot: side by side if it can be, else one
        after the other in one transaction."""
        if len(parts) < 2:
            return [self.query(*part) for part in parts]
        return self.each([partial(fetch_rows, s, p) for s, p in parts])

    def each(self, tasks: list[Callable[[SqlCursor], T]]) -> list[T]:
        """Each task's result, the tasks reading in one snapshot: side by side, each on a
        connection of its own, if it can be (:meth:`_side_by_side`), else one after the other
        in one transaction."""
        found = self._side_by_side(tasks)
        if found is not None:
            return found
        with self._reading() as cursor:
            if self.store.dialect == "postgres":
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return [task(cursor) for task in tasks]

    def one_by_one(self, statement: str, each_params: list[list[Any]]) -> list[Any]:
        """The same rows from one statement (one snapshot): the parts joined by UNION ALL."""
        return self.query(
            " UNION ALL ".join([statement] * len(each_params)),
            [value for params in each_params for value in params],
        )

    @contextmanager
    def _reading(self) -> Iterator[SqlCursor]:
        """A read-only transaction whose statements are each planned for their own
        parameters (:attr:`SqlCursor.plans_each_statement`)."""
        with self.store.transaction(commit=False) as cursor:
            cursor.plans_each_statement = True
            yield cursor

    def _side_by_side(self, parts: list[Callable[[SqlCursor], T]]) -> list[T] | None:
        """Each part's result, each part on a connection of its own at the same time, in one
        snapshot: one backend would read (and sort) them one after the other. None where that
        is not to be had: SQLite, a single part, or no slot free."""
        if len(parts) < 2 or self.store.dialect != "postgres":
            return None
        # A request holds its first connection while its other parts wait for theirs: with
        # more such requests than connections, none would move. So a few at a time.
        if not _SIDE_BY_SIDE_SLOTS.acquire(blocking=False):
            return None
        try:
            return self._in_one_snapshot(parts)
        finally:
            _SIDE_BY_SIDE_SLOTS.release()

    def _in_one_snapshot(self, parts: list[Callable[[SqlCursor], T]]) -> list[T]:
        """The first transaction exports its snapshot; the others import it, so the parts
        add up as a single statement's would."""
        with self._reading() as first:
            first.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            first.execute("SELECT pg_export_snapshot() AS snapshot")
            snapshot = first.fetchall()[0]["snapshot"]

            def in_snapshot(part: Callable[[SqlCursor], T]) -> T:
                with self._reading() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                    return part(cursor)

            others = [_SIDE_BY_SIDE.submit(in_snapshot, part) for part in parts[1:]]
            found = parts[0](first)
            return [found, *(other.result() for other in others)]


# The parts PostgreSQL computes side by side (SnapshotReads._side_by_side): threads that wait
# on the database, and at most two requests at a time doing so.
_SIDE_BY_SIDE = ThreadPoolExecutor(max_workers=4, thread_name_prefix="analytics-part")
_SIDE_BY_SIDE_SLOTS = threading.BoundedSemaphore(2)


def fetch_rows(statement: str, params: list[Any], cursor: SqlCursor) -> list[Any]:
    """A statement's rows: a task for :meth:`SnapshotReads.each` once given the first two."""
    cursor.execute(statement, params)
    return cursor.fetchall()
