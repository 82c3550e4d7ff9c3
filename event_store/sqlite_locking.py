"""SQLite's write lock: transactions that take it as they begin, and telling its errors.

The ``eventsourcing`` library begins every SQLite transaction deferred: the transaction takes
the write lock at its first write. In WAL mode, a deferred transaction that has read and then
writes fails at once with "database is locked" if another process committed in between: its
snapshot is stale, and waiting cannot refresh it, so SQLite does not wait out the lock
timeout. Processes creating the read models' schema together on a fresh data folder failed
that way (every ``CREATE … IF NOT EXISTS`` reads the schema first). Beginning with ``BEGIN
IMMEDIATE`` takes the lock first, waiting for it up to the timeout, so writers queue instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from eventsourcing.persistence import OperationalError
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore, SQLiteTransaction


class WriteLockFirstTransaction(SQLiteTransaction):
    """The library's transaction (its commit, rollback and errors), begun ``IMMEDIATE`` when
    it will commit; a transaction that is rolled back anyway only reads, and begins deferred."""

    def __enter__(self) -> SQLiteCursor:
        cursor = self.connection.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE" if self.commit else "BEGIN")
        except sqlite3.OperationalError as error:  # the lock stayed taken past the timeout
            cursor.sqlite_cursor.close()
            raise OperationalError(error) from error
        return cursor


@contextmanager
def sqlite_transaction(datastore: SQLiteDatastore, *, commit: bool) -> Iterator[SQLiteCursor]:
    """A transaction on one of ``datastore``'s pooled connections; rolled back unless
    ``commit``, and holding the write lock from its start if ``commit``."""
    with (
        datastore.get_connection(commit=commit) as connection,
        WriteLockFirstTransaction(connection, commit=commit) as cursor,
        cursor,
    ):
        yield cursor


def is_sqlite_busy(error: BaseException) -> bool:
    """Whether ``error`` is SQLite's "database is locked" (``SQLITE_BUSY``), raised by the
    driver or wrapped by the library: another process held a lock past the timeout, or the
    library set a new file's journal mode while another process opened it."""
    return any(
        isinstance(candidate, sqlite3.OperationalError)
        and candidate.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
        for candidate in (error, error.__cause__)
    )
