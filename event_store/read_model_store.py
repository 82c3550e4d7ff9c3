"""The database the read models live in: one SQL dialect-neutral cursor over SQLite or PostgreSQL.

Read-model SQL is written once with ``?`` placeholders and portable types (TEXT, BIGINT,
INTEGER); on PostgreSQL the placeholders are rewritten for psycopg. Tracking records go in the
same database, through the library's tracking recorders, so a read-model change and the position
it reflects commit in one transaction.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

import psycopg
from eventsourcing.persistence import Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg import sql
from psycopg.rows import tuple_row

from event_store.location import StoreLocation
from event_store.sqlite_locking import sqlite_transaction

Dialect = Literal["sqlite", "postgres"]
TRACKING_TABLE = "read_model_tracking"
READ_MODEL_RANDOM_PAGE_COST = 1.1  # PostgreSQL's advice for data in memory or on SSDs
SCHEMA_LOCK_KEY = 7_261_015_001  # pg_advisory_xact_lock key of read-model schema changes
Row = Mapping[str, Any]
FEW_ROWS = 16  # insert_rows on PostgreSQL: up to this many rows as INSERTs, more through COPY


class _RawCursor(Protocol):
    def execute(self, statement: Any, params: Any = ...) -> Any: ...
    def executemany(self, statement: Any, params: Any) -> Any: ...
    def fetchall(self) -> Any: ...
    def fetchone(self) -> Any: ...


def sql_text(value: str) -> str:
    """A SQL string literal (quotes doubled), for constants a statement names itself."""
    return "'" + value.replace("'", "''") + "'"


@lru_cache(maxsize=512)
def _for_psycopg(statement: str) -> str:
    return re.sub(r"\?", "%s", statement.replace("%", "%%"))


class SqlCursor:
    """A cursor that takes ``?`` placeholders on both dialects."""

    def __init__(self, raw: _RawCursor, dialect: Dialect) -> None:
        self._raw = raw
        self.dialect = dialect
        self.appends_only = False
        """Set by a bulk load into empty tables, where no row can exist twice: rows whose
        conflicts would be ignored (``ON CONFLICT … DO NOTHING``) are COPYed straight into
        their table on PostgreSQL (a duplicate would fail the batch instead)."""
        self.derived_at_end = False
        """Set while a bulk load leaves to its end what is derived from records' whole
        histories (:meth:`ReadModels.derive`): batches skip keeping it."""
        self.plans_each_statement = False
        """Set for reads whose best plan depends on their parameters (the analytics): on
        PostgreSQL each statement is planned for its own values, never prepared. psycopg
        prepares a statement run five times on a connection, and PostgreSQL may then settle
        on a generic plan: for a time in stage a year back 48 ms instead of 20, for a visits
        list 612 ms instead of 0.5."""

    def _sql(self, statement: str) -> str:
        return _for_psycopg(statement) if self.dialect == "postgres" else statement

    def execute(self, statement: str, params: Sequence[Any] = (), binary: bool = False) -> None:
        """Run a statement. ``binary`` asks PostgreSQL for its results in binary: long
        arrays of numbers arrive a fifth faster than as text."""
        if self.dialect == "postgres" and (binary or self.plans_each_statement):
            raw: Any = self._raw
            prepare = False if self.plans_each_statement else None
            raw.execute(self._sql(statement), tuple(params), binary=binary, prepare=prepare)
            return
        self._raw.execute(self._sql(statement), tuple(params))

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._raw.executemany(self._sql(statement), [tuple(row) for row in rows])

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], tail: str = ""
    ) -> None:
        """``INSERT INTO table (columns) VALUES … tail`` for every row.

        On PostgreSQL more than :data:`FEW_ROWS` rows are COPYed into a temporary staging
        table and inserted from it in one statement: row by row, a catch-up spends most of its
        time sending statements. Fewer go as one pipelined round trip of INSERTs.
        Rows of one call must not repeat a conflict key when ``tail`` updates on conflict."""
        if not rows:
            return
        names = ", ".join(columns)
        # SQLite runs in this process; on PostgreSQL a live batch's few rows go as one
        # pipelined round trip of prepared INSERTs, cheaper than the staging table's three.
        if self.dialect == "sqlite" or (len(rows) <= FEW_ROWS and not self.appends_only):
            marks = ", ".join("?" * len(columns))
            self.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks}) {tail}", rows)
            return
        raw: Any = self._raw
        if self.appends_only and tail.endswith("DO NOTHING"):
            _copy_rows(raw, table, table, columns, rows)
            return
        staging = _staging_table(raw.connection, table)
        _copy_rows(raw, staging, table, columns, rows)
        self._raw.execute(
            _for_psycopg(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} {tail}")
        )
        self._raw.execute(f"TRUNCATE {staging}")

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column IN (…values)`` as SQL and its parameters: on PostgreSQL one array
        parameter, so every length is the same statement (parsed and prepared once)."""
        if self.dialect == "postgres":
            return f"{column} = ANY(?)", [list(values)]
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)

    def stream(
        self, statement: str, params: Sequence[Any] = (), chunk: int = 5_000
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of a long result as tuples, ``chunk`` at a time, in this transaction: on
        PostgreSQL through a server-side cursor, never the whole result in memory at once.
        Other statements may run on this cursor while the rows are read."""
        raw: Any = self._raw
        if self.dialect == "postgres":
            named = raw.connection.cursor(name=f"stream_{id(self)}", row_factory=tuple_row)
            with named:
                named.execute(self._sql(statement), tuple(params))
                while rows := named.fetchmany(chunk):
                    yield from rows
            return
        reader = raw.sqlite_cursor.connection.cursor()  # beside the library's cursor
        try:
            reader.execute(statement, tuple(params))
            while rows := reader.fetchmany(chunk):
                yield from (tuple(row) for row in rows)
        finally:
            reader.close()

    def fetchall(self) -> list[Row]:
        return list(self._raw.fetchall())

    def columns_of(self, table: str) -> set[str]:
        """The columns of a read model's table (none if it does not exist)."""
        if self.dialect == "postgres":
            self.execute(
                "SELECT column_name AS name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = ?",
                [table],
            )
        else:
            self.execute("SELECT name FROM pragma_table_info(?)", [table])
        return {row["name"] for row in self.fetchall()}

    def fetchone(self) -> Row | None:
        row: Row | None = self._raw.fetchone()
        return row

    @property
    def raw(self) -> Any:
        return self._raw


_staged: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_column_types: weakref.WeakKeyDictionary[Any, dict[str, dict[str, int]]] = (
    weakref.WeakKeyDictionary()
)


def _copy_rows(
    raw: Any, target: str, shaped_like: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """COPY ``rows`` into ``target`` (a table shaped like ``shaped_like``) in PostgreSQL's
    binary format: neither side turns numbers into text and back, nor escapes strings."""
    types = _types_of(raw.connection, shaped_like)
    with raw.copy(f"COPY {target} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([types[column] for column in columns])
        for row in rows:
            copy.write_row(row)


def _types_of(connection: Any, table: str) -> dict[str, int]:
    """The type (oid) of each of ``table``'s columns, asked once a connection."""
    known = _column_types.setdefault(connection, {})
    if table not in known:
        with connection.cursor(row_factory=tuple_row) as cursor:
            cursor.execute(
                "SELECT attname, atttypid FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                [table],
            )
            known[table] = dict(cursor.fetchall())
    return known[table]


def _staging_table(connection: Any, table: str) -> str:
    """The connection's temporary table shaped like ``table`` (no constraints), made once."""
    staging = f"staging_{table}"
    made = _staged.setdefault(connection, set())
    if table not in made:
        connection.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} "
            f"ON COMMIT DELETE ROWS AS SELECT * FROM {table} WITH NO DATA"
        )
        made.add(table)
    return staging


def forget_staging_tables(connection: Any) -> None:
    """A rolled-back transaction took the staging tables it made with it."""
    if connection is not None:
        _staged.pop(connection, None)


def is_deadlock(error: BaseException) -> bool:
    """Whether PostgreSQL rolled the transaction back to break a deadlock (the library
    wraps the driver's error; it is the cause)."""
    return isinstance(error.__cause__, psycopg.errors.DeadlockDetected)


def generation_schema(generation: int) -> str:
    """The PostgreSQL schema of a read-model generation (the first lives in ``public``)."""
    return "public" if generation == 1 else f"read_models_g{generation}"


class ReadModelStore:
    """Connections, transactions and tracking for one generation of the read models.

    Each generation is a whole set of read-model tables of its own — a SQLite file or a
    PostgreSQL schema — so a rebuild can fill a new one while reads use the live one."""

    def __init__(self, location: StoreLocation, generation: int = 1) -> None:
        self.location = location
        self.generation = generation
        self.dialect: Dialect
        self.tracking: TrackingRecorder
        if location.postgres is None:
            location.data_dir.mkdir(parents=True, exist_ok=True)
            self._sqlite = SQLiteDatastore(
                str(self.sqlite_path), pool_size=location.pool_size, lock_timeout=10
            )
            self.dialect = "sqlite"
            self.tracking = SQLiteTrackingRecorder(self._sqlite)
        else:
            pg = location.postgres
            schema = generation_schema(generation)
            if generation != 1:
                create_schema(location, schema)
            self._postgres = PostgresDatastore(
                dbname=pg.dbname,
                host=pg.host,
                port=pg.port,
                user=pg.user,
                password=pg.password,
                pool_size=location.pool_size,
                max_overflow=location.pool_size,
                schema=schema,
            )
            # Our SQL names tables without a schema: each connection searches its generation.
            # Read models are read from memory, where a page read out of order costs about
            # what one in order does (PostgreSQL's default of 4 × prices a disk seek): at 4 ×,
            # the planner scans a whole table rather than an index holding all a query needs.
            pool_kwargs = self._postgres.pool.kwargs
            assert isinstance(pool_kwargs, dict)
            pool_kwargs["options"] = (
                f"-c search_path={schema} -c random_page_cost={READ_MODEL_RANDOM_PAGE_COST}"
            )
            self.dialect = "postgres"
            self.tracking = PostgresTrackingRecorder(
                self._postgres, tracking_table_name=TRACKING_TABLE
            )
        self.tracking.create_table()

    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[SqlCursor]:
        """A transaction on one pooled connection; rolled back unless ``commit``. On SQLite,
        one that will commit holds the write lock from its start (:mod:`.sqlite_locking`)."""
        if self.dialect == "sqlite":
            with sqlite_transaction(self._sqlite, commit=commit) as sqlite_cursor:
                yield SqlCursor(sqlite_cursor, "sqlite")
        else:
            connection = None
            try:
                with self._postgres.transaction(commit=commit) as pg_cursor:
                    connection = pg_cursor.connection
                    yield SqlCursor(pg_cursor, "postgres")
            except BaseException:
                forget_staging_tables(connection)
                raise
            if not commit:
                forget_staging_tables(connection)

    def insert_tracking(self, cursor: SqlCursor, tracking: Tracking) -> None:
        """Record a position in the transaction of ``cursor``; refuses to go backwards."""
        self.tracking._insert_tracking(cursor.raw, tracking)  # type: ignore[attr-defined]

    def lock_schema(self, cursor: SqlCursor, *, shared: bool = False) -> None:
        """Serialise schema changes of processes starting together: CREATE ... IF NOT EXISTS
        races otherwise (PostgreSQL; on SQLite, a transaction that will commit holds the
        write lock already). ``shared``: for builders of distinct indexes side by side, none
        of which races another."""
        if self.dialect == "postgres":
            function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            cursor.execute(f"SELECT {function}(?)", [SCHEMA_LOCK_KEY])

    def vacuum_analyze(self, table: str, *, vacuum: bool = True) -> None:
        """After a bulk load on PostgreSQL: mark the table's pages all-visible (index-only
        scans then skip it) and gather the planner's statistics at once, rather than whenever
        autovacuum comes by; without ``vacuum``, only the statistics. (VACUUM runs outside
        any transaction: on a connection of its own.)"""
        if self.dialect != "postgres":
            return
        command = "VACUUM (ANALYZE) {}" if vacuum else "ANALYZE {}"
        with admin_connection(self.location) as connection:
            connection.execute(
                sql.SQL(command).format(sql.Identifier(generation_schema(self.generation), table))
            )

    def forget_position(self, cursor: SqlCursor, name: str) -> None:
        """Delete a tracking record (for a rebuild from the start of the log)."""
        table = "tracking" if self.dialect == "sqlite" else TRACKING_TABLE
        cursor.execute(f"DELETE FROM {table} WHERE application_name = ?", [name])

    @property
    def sqlite_path(self) -> Path:
        base = self.location.read_models_path
        return (
            base
            if self.generation == 1
            else base.with_name(f"{base.stem}_g{self.generation}{base.suffix}")
        )

    def destroy(self) -> None:
        """Drop this generation's storage entirely (never the first generation's)."""
        if self.generation == 1:
            raise ValueError("the first generation holds the registry and is never dropped")
        self.close()
        if self.dialect == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.sqlite_path}{suffix}").unlink(missing_ok=True)
        else:
            drop_schema(self.location, generation_schema(self.generation))

    def position(self, name: str) -> int:
        return self.tracking.max_tracking_id(name) or 0

    def close(self) -> None:
        if self.dialect == "sqlite":
            self._sqlite.close()
        else:
            self._postgres.close()


def admin_connection(location: StoreLocation) -> psycopg.Connection[Any]:
    """A connection of its own (autocommit) to the PostgreSQL database of ``location``."""
    pg = location.postgres
    assert pg is not None
    return psycopg.connect(
        host=pg.host,
        port=pg.port,
        dbname=pg.dbname,
        user=pg.user,
        password=pg.password,
        autocommit=True,
    )


def create_schema(location: StoreLocation, schema: str) -> None:
    with admin_connection(location) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def drop_schema(location: StoreLocation, schema: str) -> None:
    with admin_connection(location) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
