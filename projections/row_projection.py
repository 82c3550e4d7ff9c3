"""A read model kept as one row per record, folded from events a batch at a time.

Each batch loads the rows its events touch, folds the events into them in memory and writes
back only what changed, in the caller's transaction. A row remembers the version of the last
event folded into it, so an event delivered twice (at-least-once streams) is folded once.
Subclasses say which events they fold and how; :meth:`RowProjection.after_batch` lets a read
model keep summaries from the changed rows.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from operator import itemgetter
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from event_store.read_model_store import SqlCursor
from projections.units import micros, record_text

RowDict = dict[str, Any]
LOAD_CHUNK = 500
FOREVER_US = 2**62  # valid_to of a record's current version


class RowProjection(ABC):
    """One table of rows keyed by record id (TEXT), with its DDL and its fold."""

    table: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    json_columns: ClassVar[frozenset[str]] = frozenset()
    indexes: ClassVar[tuple[str, ...]] = ()
    column_types: ClassVar[dict[str, str]] = {}
    keeps_history: ClassVar[bool] = False
    """Also keep every version of every row, valid over its business-time interval
    ``[valid_from_us, valid_to_us)`` in ``<table>_history``: the record as of any instant."""
    history_indexes: ClassVar[tuple[str, ...] | None] = None
    """The history table's indexes; by default one by organization and validity bounds."""

    @property
    def name(self) -> str:
        return self.table

    @property
    def history_table(self) -> str:
        return f"{self.table}_history"

    def schema(self) -> list[str]:
        columns = ", ".join(
            f"{column} {self.column_types.get(column, 'TEXT')}"
            + (" PRIMARY KEY" if column == "id" else "")
            for column in self.columns
        )
        statements = [f"CREATE TABLE IF NOT EXISTS {self.table} ({columns})", *self.indexes]
        if self.keeps_history:
            typed = ", ".join(
                f"{column} {self.column_types.get(column, 'TEXT')}" for column in self.columns
            )
            statements += [
                f"CREATE TABLE IF NOT EXISTS {self.history_table} ({typed}, "
                "valid_from_us BIGINT NOT NULL, valid_to_us BIGINT NOT NULL, "
                "PRIMARY KEY (id, version))",
                *(
                    (
                        f"CREATE INDEX IF NOT EXISTS {self.history_table}_valid "
                        f"ON {self.history_table} (organization_id, valid_to_us, valid_from_us)",
                    )
                    if self.history_indexes is None
                    else self.history_indexes
                ),
            ]
        return statements

    @abstractmethod
    def handles(self, event: DomainEventProtocol[UUID]) -> bool:
        """Whether this read model folds the event (by its class)."""

    def receives(self, event: DomainEventProtocol[UUID]) -> bool:
        """Whether :meth:`process` has anything to do with the event: those it folds."""
        return self.handles(event)

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
        keys = [record_text(event.originator_id) for event in mine]
        before = self.load(cursor, list(dict.fromkeys(keys)))
        rows: dict[str, RowDict | None] = dict(before)
        versions: list[RowDict] = []
        for key, event in zip(keys, mine, strict=True):
            row = rows[key]
            if row is not None and event.originator_version <= row["version"]:
                continue  # already folded: a redelivered event changes nothing
            rows[key] = self.fold(row, event)
            if rows[key] is not None:
                versions.append(dict(rows[key]))  # type: ignore[arg-type]
        changed = {key: row for key, row in rows.items() if row is not None and row != before[key]}
        if cursor.appends_only:  # a bulk load: a row it did not find stored is a new one
            self.append(cursor, [row for key, row in changed.items() if before[key] is None])
            self.write(cursor, [row for key, row in changed.items() if before[key] is not None])
        else:
            self.write(cursor, changed.values())
        if self.keeps_history:
            self.write_history(cursor, before, versions)
        self.after_batch(cursor, before, changed)

    def write_history(
        self, cursor: SqlCursor, before: dict[str, RowDict | None], versions: list[RowDict]
    ) -> None:
        """Append the batch's versions; each one ends where the record's next one begins."""
        following: dict[str, int] = {}
        valid_to: list[int] = []
        for version in reversed(versions):
            valid_to.append(following.get(version["id"], FOREVER_US))
            following[version["id"]] = version["updated_at_us"]
        valid_to.reverse()
        closed = [
            (following[key], key, row["version"])
            for key, row in before.items()
            if row is not None and key in following
        ]
        cursor.executemany(
            f"UPDATE {self.history_table} SET valid_to_us = ? WHERE id = ? AND version = ?",
            closed,
        )
        cursor.insert_rows(
            self.history_table,
            (*self.columns, "valid_from_us", "valid_to_us"),
            [
                [*self.encode(version), version["updated_at_us"], until]
                for version, until in zip(versions, valid_to, strict=True)
            ],
            "ON CONFLICT (id, version) DO NOTHING",
        )

    def load_as_of(
        self, cursor: SqlCursor, organization_id: str, record_id: str, instant_us: int
    ) -> RowDict | None:
        """The record's version valid at a business instant, if it existed then."""
        cursor.execute(
            f"SELECT * FROM {self.history_table} WHERE id = ? AND organization_id = ? "
            "AND valid_from_us <= ? AND valid_to_us > ? ORDER BY version DESC LIMIT 1",
            [record_id, organization_id, instant_us, instant_us],
        )
        row = cursor.fetchone()
        return None if row is None else self.decode(row)

    def load(self, cursor: SqlCursor, ids: list[str]) -> dict[str, RowDict | None]:
        found: dict[str, RowDict | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), LOAD_CHUNK):
            chunk = ids[start : start + LOAD_CHUNK]
            among, params = cursor.one_of("id", chunk)
            cursor.execute(f"SELECT * FROM {self.table} WHERE {among}", params)
            for row in cursor.fetchall():
                found[row["id"]] = self.decode(row)
        return found

    def write(self, cursor: SqlCursor, rows: Iterable[RowDict]) -> None:
        updates = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c != "id")
        cursor.insert_rows(
            self.table,
            self.columns,
            [self.encode(row) for row in rows],
            f"ON CONFLICT (id) DO UPDATE SET {updates}",
        )

    def append(self, cursor: SqlCursor, rows: Iterable[RowDict]) -> None:
        """New rows, none of them stored yet: in a bulk load, COPYed straight into the table
        (:attr:`SqlCursor.appends_only`)."""
        cursor.insert_rows(
            self.table,
            self.columns,
            [self.encode(row) for row in rows],
            "ON CONFLICT (id) DO NOTHING",
        )

    def decode(self, row: Any) -> RowDict:
        decoded = {column: row[column] for column in self.columns}
        for column in self.json_columns:
            decoded[column] = json.loads(decoded[column])
        return decoded

    def encode(self, row: RowDict) -> list[Any]:
        """A row's values in column order, JSON columns as text (a bulk load encodes every
        row it writes: the values are picked in one call, then the few JSON ones encoded)."""
        pick, json_positions = self._encoding
        values = list(pick(row))
        for position in json_positions:
            values[position] = encode_json(values[position])
        return values

    @cached_property
    def _encoding(self) -> tuple[Callable[[RowDict], Sequence[Any]], tuple[int, ...]]:
        """What :meth:`encode` picks (every table has several columns, so a tuple) and which
        of its positions hold JSON."""
        json_positions = tuple(
            position for position, column in enumerate(self.columns) if column in self.json_columns
        )
        return itemgetter(*self.columns), json_positions


class ChangesProjection(RowProjection):
    """A row created by one event type and changed by the columns each later event sets."""

    created_by: ClassVar[type[Any]]

    def fold(self, row: RowDict | None, event: DomainEventProtocol[UUID]) -> RowDict | None:
        if row is None and not isinstance(event, self.created_by):
            return None  # events before the record's creation: cannot happen in an ordered log
        changes = self._changes_of(type(event))(self, event, row or {})
        return {**(row or {}), **changes, **common_columns(event)}

    def changes(self, event: Any, row: RowDict) -> RowDict:
        """The columns the event sets, given the row before it (subclasses make it a
        ``singledispatchmethod``, one handler per event type)."""
        return {}

    def _changes_of(self, event_type: type[Any]) -> Callable[[Any, Any, RowDict], RowDict]:
        """The ``changes`` handler of an event type, looked up once: a singledispatchmethod
        builds a new bound wrapper on every attribute access."""
        handlers: dict[type[Any], Callable[[Any, Any, RowDict], RowDict]]
        handlers = self.__dict__.setdefault("_changes_handlers", {})
        handler = handlers.get(event_type)
        if handler is None:
            declared = inspect.getattr_static(type(self), "changes")
            dispatcher = getattr(declared, "dispatcher", None)
            handler = declared if dispatcher is None else dispatcher.dispatch(event_type)
            handlers[event_type] = handler
        return handler


def encode_json(value: Any) -> str:
    """A JSON column's text: keys sorted, so equal values are equal text."""
    if not value:  # most lists and mappings in a record are empty
        return "[]" if isinstance(value, list) else json.dumps(value)
    return json.dumps(value, sort_keys=True)


def common_columns(event: Any) -> RowDict:
    """The bookkeeping every record row carries from its latest event."""
    return {
        "version": event.originator_version,
        "updated_at_us": micros(event.context.occurred_at),
        "recorded_at_us": micros(event.timestamp),
    }


def add_to_summary(
    cursor: SqlCursor,
    table: str,
    key_columns: Sequence[str],
    sums: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Add (key…, sums…) deltas to a summary kept beside the rows (:meth:`after_batch`), in
    the order given (in key order, concurrent batches lock rows in the same order). The first
    of ``sums`` counts the records behind a row: a row it brings to 0 is deleted (the
    summaries index those rows: ``WHERE deals = 0``)."""
    if not rows:
        return
    cursor.insert_rows(
        table,
        (*key_columns, *sums),
        rows,
        f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET "
        + ", ".join(f"{column} = {table}.{column} + excluded.{column}" for column in sums),
    )
    cursor.execute(f"DELETE FROM {table} WHERE {sums[0]} = 0")
