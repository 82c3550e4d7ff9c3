"""A read model kept as one row per record, folded from events a batch at a time.

Each batch loads the rows its events touch, folds the events into them in memory and writes
back only what changed, in the caller's transaction. A row remembers the version of the last
event folded into it, so an event delivered twice (at-least-once streams) is folded once.
Subclasses say which events they fold and how; :meth:`RowProjection.after_batch` lets a read
model keep summaries from the changed rows.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from event_store.read_model_store import SqlCursor
from projections.units import micros

RowDict = dict[str, Any]
LOAD_CHUNK = 500


class RowProjection(ABC):
    """One table of rows keyed by record id (TEXT), with its DDL and its fold."""

    table: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    json_columns: ClassVar[frozenset[str]] = frozenset()
    indexes: ClassVar[tuple[str, ...]] = ()
    column_types: ClassVar[dict[str, str]] = {}

    @property
    def name(self) -> str:
        return self.table

    def schema(self) -> list[str]:
        columns = ", ".join(
            f"{column} {self.column_types.get(column, 'TEXT')}"
            + (" PRIMARY KEY" if column == "id" else "")
            for column in self.columns
        )
        return [f"CREATE TABLE IF NOT EXISTS {self.table} ({columns})", *self.indexes]

    @abstractmethod
    def handles(self, event: DomainEventProtocol[UUID]) -> bool:
        """Whether this read model folds the event."""

    @abstractmethod
    def fold(self, row: RowDict | None, event: DomainEventProtocol[UUID]) -> RowDict | None:
        """The row after the event, given the row before it (None: no row yet)."""

    def after_batch(
        self, cursor: SqlCursor, before: dict[str, RowDict | None], after: dict[str, RowDict]
    ) -> None:
        """Hook for summaries kept beside the rows; ``after`` holds only changed rows."""
        return

    def process(self, cursor: SqlCursor, events: Sequence[DomainEventProtocol[UUID]]) -> None:
        mine = [event for event in events if self.handles(event)]
        if not mine:
            return
        ids = list(dict.fromkeys(str(event.originator_id) for event in mine))
        before = self.load(cursor, ids)
        rows: dict[str, RowDict | None] = dict(before)
        for event in mine:
            key = str(event.originator_id)
            row = rows[key]
            if row is not None and event.originator_version <= row["version"]:
                continue  # already folded: a redelivered event changes nothing
            rows[key] = self.fold(row, event)
        changed = {key: row for key, row in rows.items() if row is not None and row != before[key]}
        self.write(cursor, changed.values())
        self.after_batch(cursor, before, changed)

    def load(self, cursor: SqlCursor, ids: list[str]) -> dict[str, RowDict | None]:
        found: dict[str, RowDict | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), LOAD_CHUNK):
            chunk = ids[start : start + LOAD_CHUNK]
            cursor.execute(
                f"SELECT * FROM {self.table} WHERE id IN ({', '.join('?' * len(chunk))})", chunk
            )
            for row in cursor.fetchall():
                found[row["id"]] = self.decode(row)
        return found

    def write(self, cursor: SqlCursor, rows: Iterable[RowDict]) -> None:
        names = ", ".join(self.columns)
        marks = ", ".join("?" * len(self.columns))
        updates = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c != "id")
        cursor.executemany(
            f"INSERT INTO {self.table} ({names}) VALUES ({marks}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates}",
            [self.encode(row) for row in rows],
        )

    def decode(self, row: Any) -> RowDict:
        decoded = {column: row[column] for column in self.columns}
        for column in self.json_columns:
            decoded[column] = json.loads(decoded[column])
        return decoded

    def encode(self, row: RowDict) -> list[Any]:
        return [
            json.dumps(row[column], sort_keys=True) if column in self.json_columns else row[column]
            for column in self.columns
        ]


def common_columns(event: Any) -> RowDict:
    """The bookkeeping every record row carries from its latest event."""
    return {
        "version": event.originator_version,
        "updated_at_us": micros(event.context.occurred_at),
        "recorded_at_us": micros(event.timestamp),
    }
