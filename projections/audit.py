"""The audit trail: one row per event of every CRM record — who did what to which, when."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from aggregates.base import CrmAggregate
from event_store.read_model_store import ReadModelStore, SqlCursor
from projections.keys import key_index
from projections.listing import InvalidQuery, Page, decode_cursor, encode_cursor
from projections.units import micros, organization_text, record_text

AUDIT_TABLE = "rm_audit"
AUDIT_COLUMNS = (
    "record_id",
    "version",
    "organization_id",
    "record_type",
    "event_type",
    "actor_id",
    "occurred_at_us",
    "recorded_at_us",
    "command_id",
    "correlation_id",
)


class AuditProjection:
    """Appends every CRM event once (keyed by record and version)."""

    name = AUDIT_TABLE

    def schema(self) -> list[str]:
        return [
            f"CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} ("
            "record_id TEXT NOT NULL, version INTEGER NOT NULL, organization_id TEXT NOT NULL, "
            "record_type TEXT NOT NULL, event_type TEXT NOT NULL, actor_id TEXT NOT NULL, "
            "occurred_at_us BIGINT NOT NULL, recorded_at_us BIGINT NOT NULL, "
            "command_id TEXT NOT NULL, correlation_id TEXT NOT NULL)",
            # built at the end of a bulk load (projections.keys): 4.6 s kept up row by row
            # over the bench's 1M audit rows, 0.9 s built once
            key_index(AUDIT_TABLE, ("record_id", "version")),
            f"CREATE INDEX IF NOT EXISTS rm_audit_by_org ON {AUDIT_TABLE} "
            "(organization_id, recorded_at_us, record_id, version)",
        ]

    def receives(self, event: DomainEventProtocol[UUID]) -> bool:
        return isinstance(event, CrmAggregate.Event)

    def process(self, cursor: SqlCursor, events: Sequence[DomainEventProtocol[UUID]]) -> None:
        rows = [self.row(event) for event in events if self.receives(event)]
        cursor.insert_rows(
            AUDIT_TABLE, AUDIT_COLUMNS, rows, "ON CONFLICT (record_id, version) DO NOTHING"
        )

    @staticmethod
    def row(event: Any) -> list[Any]:
        context = event.context
        record_type, event_type = names_of(type(event))
        command_id = str(context.command_id)
        return [
            record_text(event.originator_id),
            event.originator_version,
            organization_text(context.organization_id),
            record_type,
            event_type,
            context.actor_id,
            micros(context.occurred_at),
            micros(event.timestamp),
            command_id,
            # A command is usually its own correlation: its id turned into text once.
            command_id
            if context.correlation_id == context.command_id
            else str(context.correlation_id),
        ]


_NAMES: dict[type[Any], tuple[str, str]] = {}


def names_of(event_type: type[Any]) -> tuple[str, str]:
    """(record type, event type) of an event class: ``Deal.StageChanged`` → deal, StageChanged."""
    names = _NAMES.get(event_type)
    if names is None:
        names = _NAMES[event_type] = (
            event_type.__qualname__.split(".")[0].lower(),
            event_type.__name__,
        )
    return names


@dataclass
class AuditFilter:
    organization_id: UUID
    actor_id: str | None = None
    record_id: UUID | None = None
    event_type: str | None = None
    occurred_from_us: int | None = None
    occurred_to_us: int | None = None


class AuditQueries:
    def __init__(self, store: ReadModelStore) -> None:
        self.store = store

    def page(self, where: AuditFilter, cursor_token: str | None, limit: int) -> Page:
        """Audit entries oldest first (by recorded time), filtered, one page at a time."""
        return audit_page(self.store, where, cursor_token, limit)


def audit_page(
    store: ReadModelStore, where: AuditFilter, cursor_token: str | None, limit: int
) -> Page:
    clauses: list[str] = ["organization_id = ?"]
    params: list[object] = [str(where.organization_id)]
    for column, value in (
        ("actor_id", where.actor_id),
        ("record_id", None if where.record_id is None else str(where.record_id)),
        ("event_type", where.event_type),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if where.occurred_from_us is not None:
        clauses.append("occurred_at_us >= ?")
        params.append(where.occurred_from_us)
    if where.occurred_to_us is not None:
        clauses.append("occurred_at_us < ?")
        params.append(where.occurred_to_us)
    if cursor_token is not None:
        position, record_id = decode_cursor(cursor_token, AUDIT_TABLE)
        recorded_at_us, _, version = str(position).partition(":")
        if not (
            recorded_at_us.isdigit() and version.isdigit() and len(recorded_at_us + version) < 25
        ):
            raise InvalidQuery("cursor", "cursor is not one this API returned.")
        clauses.append("(recorded_at_us, record_id, version) > (?, ?, ?)")
        params.extend((int(recorded_at_us), record_id, int(version)))
    with store.transaction(commit=False) as cursor:
        cursor.execute(
            f"SELECT * FROM {AUDIT_TABLE} WHERE {' AND '.join(clauses)} "
            "ORDER BY recorded_at_us, record_id, version LIMIT ?",
            [*params, limit + 1],
        )
        rows = [dict(row) for row in cursor.fetchall()]
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    token = None
    if last is not None:
        token = encode_cursor(
            f"{last['recorded_at_us']}:{last['version']}", last["record_id"], AUDIT_TABLE
        )
    return Page(rows, token)
