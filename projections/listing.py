"""Lists over a read model: filters, a whitelisted sort and keyset cursor pagination."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from event_store.read_model_store import SqlCursor
from projections.row_projection import RowDict, RowProjection


class InvalidQuery(Exception):
    """A query parameter the read model cannot answer, named by its field (HTTP 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Page:
    rows: list[RowDict]
    next_cursor: str | None


@dataclass
class Query:
    """A list query: ``WHERE`` clauses with their parameters, then sort and page."""

    organization_id: str
    clauses: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def where(self, clause: str, *params: Any) -> Query:
        self.clauses.append(clause)
        self.params.extend(params)
        return self

    def where_equal(self, column: str, value: Any) -> Query:
        return self if value is None else self.where(f"{column} = ?", value)


INT64 = 2**63
NOT_OURS = "cursor is not one this API returned for this sort."


def encode_cursor(sort_value: Any, record_id: str, sort_column: str = "") -> str:
    raw = json.dumps([sort_column, sort_value, record_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort_column: str = "", numeric: bool = False) -> tuple[Any, str]:
    """The (sort value, id) a cursor continues after; it must come from the same sort and
    carry a value of the sort column's type."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        column, sort_value, record_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as error:
        raise InvalidQuery("cursor", NOT_OURS) from error
    if column != sort_column or not isinstance(record_id, str):
        raise InvalidQuery("cursor", NOT_OURS)
    if numeric:
        if isinstance(sort_value, bool) or not isinstance(sort_value, int):
            raise InvalidQuery("cursor", NOT_OURS)
        if not -INT64 <= sort_value < INT64:
            raise InvalidQuery("cursor", NOT_OURS)
    elif not isinstance(sort_value, str):
        raise InvalidQuery("cursor", NOT_OURS)
    return sort_value, record_id


def parse_sort(sort: str, allowed: dict[str, str]) -> tuple[str, bool]:
    """``name`` or ``-name`` → (column, descending), for the sorts a list allows."""
    descending = sort.startswith("-")
    key = sort.removeprefix("-")
    if key not in allowed:
        choices = ", ".join(sorted(allowed))
        raise InvalidQuery("sort", f"sort by one of {choices} (prefix - for descending).")
    return allowed[key], descending


def page(
    cursor: SqlCursor,
    projection: RowProjection,
    query: Query,
    sort_column: str,
    descending: bool,
    after: str | None,
    limit: int,
) -> Page:
    """One page of rows in (sort column, id) order, after the given cursor."""
    clauses = ["organization_id = ?", *query.clauses]
    params = [query.organization_id, *query.params]
    if after is not None:
        numeric = projection.column_types.get(sort_column, "TEXT") in ("BIGINT", "INTEGER")
        sort_value, record_id = decode_cursor(after, sort_column, numeric)
        clauses.append(f"({sort_column}, id) {'<' if descending else '>'} (?, ?)")
        params.extend((sort_value, record_id))
    direction = "DESC" if descending else "ASC"
    cursor.execute(
        f"SELECT * FROM {projection.table} WHERE {' AND '.join(clauses)} "
        f"ORDER BY {sort_column} {direction}, id {direction} LIMIT ?",
        [*params, limit + 1],
    )
    rows = [projection.decode(row) for row in cursor.fetchall()]
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor(rows[-1][sort_column], rows[-1]["id"], sort_column) if more else None
    )
    return Page(rows, next_cursor)
