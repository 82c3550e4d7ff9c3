"""The database the read models live in: one SQL dialect-neutral cursor over SQLite or PostgreSQL.

Read-model SQL is written once with ``?`` placeholders and portable types (TEXT, BIGINT,
INTEGER); on PostgreSQL the placeholders are rewritten for psycopg. Tracking records go in the
same database, through the library's tracking recorders, so a read-model change and the position
it reflects commit in one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Literal, Protocol

from eventsourcing.persistence import Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder

from event_store.location import StoreLocation

Dialect = Literal["sqlite", "postgres"]
Row = Mapping[str, Any]


class _RawCursor(Protocol):
    def execute(self, statement: Any, params: Any = ...) -> Any: ...
    def executemany(self, statement: Any, params: Any) -> Any: ...
    def fetchall(self) -> Any: ...
    def fetchone(self) -> Any: ...


@lru_cache(maxsize=512)
def _for_psycopg(statement: str) -> str:
    return re.sub(r"\?", "%s", statement.replace("%", "%%"))


class SqlCursor:
    """A cursor that takes ``?`` placeholders on both dialects."""

    def __init__(self, raw: _RawCursor, dialect: Dialect) -> None:
        self._raw = raw
        self.dialect = dialect

    def _sql(self, statement: str) -> str:
        return _for_psycopg(statement) if self.dialect == "postgres" else statement

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self._raw.execute(self._sql(statement), tuple(params))

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._raw.executemany(self._sql(statement), [tuple(row) for row in rows])

    def fetchall(self) -> list[Row]:
        return list(self._raw.fetchall())

    def fetchone(self) -> Row | None:
        row: Row | None = self._raw.fetchone()
        return row

    @property
    def raw(self) -> Any:
        return self._raw


class ReadModelStore:
    """Connections, transactions and tracking for the read-model database."""

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self.dialect: Dialect
        self.tracking: TrackingRecorder
        if location.postgres is None:
            location.data_dir.mkdir(parents=True, exist_ok=True)
            self._sqlite = SQLiteDatastore(
                str(location.read_models_path), pool_size=location.pool_size, lock_timeout=10
            )
            self.dialect = "sqlite"
            self.tracking = SQLiteTrackingRecorder(self._sqlite)
        else:
            pg = location.postgres
            self._postgres = PostgresDatastore(
                dbname=pg.dbname,
                host=pg.host,
                port=pg.port,
                user=pg.user,
                password=pg.password,
                pool_size=location.pool_size,
                max_overflow=location.pool_size,
                pre_ping=True,
            )
            self.dialect = "postgres"
            self.tracking = PostgresTrackingRecorder(
                self._postgres, tracking_table_name="read_model_tracking"
            )
        self.tracking.create_table()

    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[SqlCursor]:
        """A transaction on one pooled connection; rolled back unless ``commit``."""
        if self.dialect == "sqlite":
            with self._sqlite.transaction(commit=commit) as sqlite_cursor:
                yield SqlCursor(sqlite_cursor, "sqlite")
        else:
            with self._postgres.transaction(commit=commit) as pg_cursor:
                yield SqlCursor(pg_cursor, "postgres")

    def insert_tracking(self, cursor: SqlCursor, tracking: Tracking) -> None:
        """Record a position in the transaction of ``cursor``; refuses to go backwards."""
        self.tracking._insert_tracking(cursor.raw, tracking)  # type: ignore[attr-defined]

    def forget_position(self, cursor: SqlCursor, name: str) -> None:
        """Delete a tracking record (for a rebuild from the start of the log)."""
        table = "tracking" if self.dialect == "sqlite" else "read_model_tracking"
        cursor.execute(f"DELETE FROM {table} WHERE application_name = ?", [name])

    def position(self, name: str) -> int:
        return self.tracking.max_tracking_id(name) or 0

    def close(self) -> None:
        if self.dialect == "sqlite":
            self._sqlite.close()
        else:
            self._postgres.close()
