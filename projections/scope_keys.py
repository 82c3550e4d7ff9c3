"""A pipeline's scope key: its organization and pipeline as one integer that leads the big indexes.

Most reads of the stage visits name one organization and one pipeline. Indexes led by those two
texts compare them on every step of a build's sort — a 36-character organization id equal on
nearly every row, then the pipeline — and the stage visits' four indexes took 11.8 s to build after
a bulk load of the benchmark's book. Led by one integer they take 6.4 (each built alone).

The key is a hash, so two pipelines may share one: the organization and the pipeline stay in the
indexes (last) and in every read's conditions, which tell such pipelines apart. The stage
conversion entries are keyed the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from hashlib import blake2b

from event_store.read_model_store import SqlCursor

SCOPE_KEY = "scope_key"


@lru_cache(maxsize=4096)
def scope_key(organization_id: str, pipeline_id: str) -> int:
    """A signed 64-bit integer, the same in every process and release (BLAKE2b of both ids)."""
    digest = blake2b(f"{organization_id}\x1f{pipeline_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def in_scope(organization_id: str, pipeline_id: str) -> tuple[str, list[object]]:
    """SQL naming a pipeline's rows by its key, then by both ids, and the parameters."""
    return (
        f"{SCOPE_KEY} = ? AND organization_id = ? AND pipeline_id = ?",
        [scope_key(organization_id, pipeline_id), organization_id, pipeline_id],
    )


def add_scope_key_column(cursor: SqlCursor, table: str, unkeyed_indexes: Iterable[str]) -> None:
    """Rows stored before their table had a scope key get it: the indexes led by the ids
    dropped first (the schema builds their successors), the column added, then one UPDATE per
    pipeline. A table created with the key, or none yet, is left alone."""
    columns = cursor.columns_of(table)
    if not columns or SCOPE_KEY in columns:
        return
    for name in unkeyed_indexes:
        cursor.execute(f"DROP INDEX IF EXISTS {table}_{name}")
    cursor.execute(f"ALTER TABLE {table} ADD COLUMN {SCOPE_KEY} BIGINT NOT NULL DEFAULT 0")
    cursor.execute(f"SELECT DISTINCT organization_id, pipeline_id FROM {table}")
    for row in cursor.fetchall():
        organization_id, pipeline_id = row["organization_id"], row["pipeline_id"]
        cursor.execute(
            f"UPDATE {table} SET {SCOPE_KEY} = ? WHERE organization_id = ? AND pipeline_id = ?",
            [scope_key(organization_id, pipeline_id), organization_id, pipeline_id],
        )


def scope_statistics(table: str) -> str:
    """PostgreSQL: that the key decides the organization and pipeline. Without it, reads that
    name all three have their selectivities multiplied: a pipeline with a third of the visits
    was expected to match a ninth, and its visits list sorted 21,474 of them (41 ms, not 2)."""
    return (
        f"CREATE STATISTICS IF NOT EXISTS {table}_scope (dependencies) "
        f"ON {SCOPE_KEY}, organization_id, pipeline_id FROM {table}"
    )
