"""Unique keys that a bulk load on PostgreSQL builds at its end, as it builds the secondary
indexes, rather than keeping them up row by row.

A table qualifies when no write of a bulk load needs its key: the load COPYs or inserts rows
it never repeats, and nothing it does looks rows up by the key. Live batches still do — they
skip repeated events, and move counts, by ``ON CONFLICT`` on it — so the key is a unique index
(which ``ON CONFLICT`` infers like a primary key), dropped and built again by name. Earlier
releases made these keys primary keys: :func:`replace_primary_key` drops one.
"""

from __future__ import annotations

from collections.abc import Sequence

from event_store.read_model_store import SqlCursor


def key_name(table: str) -> str:
    return f"{table}_key"


def key_index(table: str, columns: Sequence[str]) -> str:
    """The statement that creates a table's key."""
    return f"CREATE UNIQUE INDEX IF NOT EXISTS {key_name(table)} ON {table} ({', '.join(columns)})"


def earlier_primary_key(table: str) -> str:
    """The name PostgreSQL gave the primary key an earlier release declared."""
    return f"{table}_pkey"


def replace_primary_key(cursor: SqlCursor, table: str) -> None:
    """On PostgreSQL, drop the primary key an earlier release gave a stored table; the schema's
    key (:func:`key_index`) then takes its place. SQLite cannot drop one: a table stored there
    keeps it beside the new key."""
    if cursor.dialect != "postgres":
        return
    cursor.execute(
        "SELECT 1 FROM pg_constraint WHERE conname = ? "
        "AND connamespace = CAST(current_schema() AS regnamespace)",
        [earlier_primary_key(table)],
    )
    if cursor.fetchone() is not None:
        cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {earlier_primary_key(table)}")
