"""The library application every part of the service opens the event store through."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import (
    ApplicationRecorder,
    JSONTranscoder,
    Mapper,
    Notification,
    Recording,
    StoredEvent,
    Transcoder,
)
from psycopg.rows import tuple_row

from event_store.group_commit import GroupCommit, notifications_for
from event_store.location import StoreLocation
from event_store.read_model_store import admin_connection
from event_store.transcodings import CrmTranscoder, register_crm_transcodings
from event_store.typed_states import TypedMapper

EVENT_STORE_LOCK_KEY = 7_261_015_002  # pg_advisory_lock key of the event store's set-up


class EventStoreApplication(Application[UUID]):
    """An ``eventsourcing`` application with our transcodings and storage settings."""

    name = "crm"

    def __init__(self, location: StoreLocation, **env: str) -> None:
        self.location = location
        super().__init__(env={**location.event_store_env(), **env})
        self.group_commit = GroupCommit(self.recorder)

    def construct_recorder(self) -> ApplicationRecorder:
        """The library's recorder, its tables made under a PostgreSQL advisory lock. The
        library replaces its functions each time (CREATE OR REPLACE FUNCTION); processes
        starting together (``crm serve --workers``) would do so at the same moment, which
        PostgreSQL refuses ("tuple concurrently updated")."""
        if not self.location.is_postgres:
            return super().construct_recorder()
        with admin_connection(self.location) as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", [EVENT_STORE_LOCK_KEY])
            try:
                return super().construct_recorder()
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", [EVENT_STORE_LOCK_KEY])

    def construct_mapper(self) -> Mapper[UUID]:
        """The library's mapper, reading each event class's state by a schema of its own
        (:class:`TypedMapper`: half the time per event of the library's path)."""
        return self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=TypedMapper)

    def construct_transcoder(self) -> Transcoder:
        transcoder = CrmTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_crm_transcodings(transcoder)

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        """Store one save's events, sharing a transaction with concurrent saves."""
        if processing_event.tracking is not None or processing_event.saved_kwargs:
            msg = "group commit stores plain saves only (no tracking, no recorder kwargs)"
            raise NotImplementedError(msg)
        domain_events = processing_event.events
        stored = [self.mapper.to_stored_event(event) for event in domain_events]
        ids = self.group_commit.insert(stored) if stored else []
        notifications = notifications_for(stored, ids)
        return [Recording(d, n) for d, n in zip(domain_events, notifications, strict=True)]

    @property
    def notify_channel(self) -> str:
        """The PostgreSQL channel the library NOTIFYs on each insert."""
        channel: str = getattr(self.recorder, "channel_name", "")
        return channel

    def head_position(self) -> int:
        """The position of the newest stored event (0 for an empty store)."""
        return self.recorder.max_notification_id() or 0

    def select_notifications_where(
        self, after: int, up_to: int, condition: str
    ) -> list[Notification]:
        """On PostgreSQL, the notifications at positions ``(after, up_to]`` that meet a SQL
        ``condition`` on the events table's columns, in order: a share of the log read
        without the rest (see :meth:`projections.partitions.Partition.condition_sql`)."""
        recorder: Any = self.recorder
        statement = (
            f"SELECT notification_id, originator_id, originator_version, topic, state "
            f"FROM {recorder.events_table_name} "
            f"WHERE notification_id > %s AND notification_id <= %s AND ({condition}) "
            "ORDER BY notification_id"
        )
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.row_factory = tuple_row  # a bulk load reads every event: no dict per row
            cursor.execute(statement, (after, up_to), prepare=True)
            return [
                Notification(
                    id=position,
                    originator_id=originator_id,
                    originator_version=version,
                    topic=topic,
                    state=bytes(state),
                )
                for position, originator_id, version, topic, state in cursor.fetchall()
            ]

    def select_events_of(self, originator_ids: Collection[UUID]) -> dict[UUID, list[StoredEvent]]:
        """Every stored event of several records in one query (one round trip where the
        library's ``select_events`` takes one per record), each record's in version order.
        Records with no events are left out."""
        recorder: Any = self.recorder
        select = (
            "SELECT originator_id, originator_version, topic, state "
            f"FROM {recorder.events_table_name} WHERE originator_id "
        )
        order = " ORDER BY originator_id, originator_version"
        # One parameter per id: psycopg dumps an array parameter in ≈ 60 µs, a third of the query.
        if self.location.is_postgres:
            marks = ", ".join("%s" for _ in originator_ids)
            # Like the library's select_events: outside a transaction (BEGIN and ROLLBACK
            # would be two more round trips).
            with recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
                cursor.execute(select + f"IN ({marks})" + order, list(originator_ids), prepare=True)
                rows = cursor.fetchall()
        else:
            marks = ", ".join("?" for _ in originator_ids)
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(select + f"IN ({marks})" + order, [i.hex for i in originator_ids])
                rows = cursor.fetchall()
        events: dict[UUID, list[StoredEvent]] = {}
        for row in rows:
            originator_id = row["originator_id"]
            if not isinstance(originator_id, UUID):
                originator_id = UUID(originator_id)
            events.setdefault(originator_id, []).append(
                StoredEvent(
                    originator_id=originator_id,
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
            )
        return events

    def position_of(self, originator_id: UUID, version: int) -> int | None:
        """The log position of one stored event, or None if it was never stored."""
        recorder: Any = self.recorder
        table = recorder.events_table_name
        if self.location.is_postgres:
            statement = (
                f"SELECT notification_id AS position FROM {table} "
                "WHERE originator_id = %s AND originator_version = %s"
            )
            key: Any = originator_id
        else:
            statement = (
                f"SELECT rowid AS position FROM {table} "
                "WHERE originator_id = ? AND originator_version = ?"
            )
            key = originator_id.hex
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, (key, version))
            row = cursor.fetchone()
        return None if row is None else int(row["position"])
