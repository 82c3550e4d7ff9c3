"""The set of read models the service keeps, created and fed together."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Protocol
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from event_store.read_model_store import ReadModelStore, SqlCursor
from projections.administration import (
    MembersProjection,
    OrganizationsProjection,
    TokensProjection,
)
from projections.audit import AUDIT_TABLE, AuditProjection
from projections.clients import ClientsProjection
from projections.contacts import ContactsProjection
from projections.deals import (
    EMPTIED_ROWS,
    SCOPED_TABLES,
    DealsProjection,
    add_scope_keys,
)
from projections.keys import key_name, replace_primary_key
from projections.pipelines import ExchangeRatesProjection, PipelinesProjection
from projections.scope_keys import scope_statistics
from projections.stage_conversion import ENTRIES_TABLE
from projections.stage_durations import ALL_TIME_TABLE, DURATIONS_TABLE

SECONDARY_INDEX = re.compile(r"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS (\w+) ")
KEYED_AT_END = (AUDIT_TABLE, ENTRIES_TABLE, DURATIONS_TABLE, ALL_TIME_TABLE)
"""The tables whose keys a bulk load on PostgreSQL builds at its end (:mod:`projections.keys`):
the audit, which its batches COPY, and what its end derives into cleared tables. (On SQLite
the batches insert, skipping conflicts: they need the keys.)"""
KEYS_BUILT_AT_END = frozenset(key_name(table) for table in KEYED_AT_END)
ANALYZED_ONLY = frozenset({AUDIT_TABLE})
"""Tables a bulk load's end only ANALYZEs: no read scans them index-only (the audit's pages
are read for every row listed), so they need no visibility map yet, and autovacuum comes by
later (VACUUM of the bench's 1M audit rows: 1.1–1.9 s of the end's CPU)."""
INDEX_BUILDERS = 2  # connections building the secondary indexes at the end of a bulk load
DERIVE_WORK_MEM = "64MB"  # a share's memory for the groupings of a bulk load's end (1M-event
# book: the monthly durations' grouping 2.9 → 2.6 s, the transitions' 0.6 → 0.5 s)
PROJECTED_TOPIC_PREFIXES = (
    "aggregates.client:",
    "aggregates.contact:",
    "aggregates.deal:",
    "aggregates.organization:",
    "aggregates.membership:",
    "aggregates.api_token:",
    "aggregates.pipeline:",
    "aggregates.exchange_rates:",
)


class Projection(Protocol):
    """A read model: its tables, and how a batch of events changes them."""

    def schema(self) -> list[str]: ...

    def receives(self, event: DomainEventProtocol[UUID]) -> bool:
        """Whether :meth:`process` has anything to do with the event — decided by its class
        alone: :class:`ReadModels` asks once per class, then hands each projection only the
        events of the classes it receives."""
        ...

    def process(self, cursor: SqlCursor, events: Sequence[DomainEventProtocol[UUID]]) -> None: ...


class ReadModels:
    """Every read model, applied to each batch of events in the caller's transaction."""

    def __init__(self, store: ReadModelStore) -> None:
        self.store = store
        self.deals = DealsProjection()
        self.projections: tuple[Projection, ...] = (
            ClientsProjection(),
            ContactsProjection(),
            PipelinesProjection(),  # before the deals: they count conversion by its stage order
            self.deals,
            OrganizationsProjection(),
            MembersProjection(),
            TokensProjection(),
            ExchangeRatesProjection(),
            AuditProjection(),
        )
        self._routes: dict[type, tuple[int, ...]] = {}
        """Which projections receive each class of event (:meth:`Projection.receives`)."""

    def create_tables(self) -> None:
        with self.store.transaction(commit=True) as cursor:
            self.store.lock_schema(cursor)
            add_scope_keys(cursor)  # to rows stored without them: the schema's indexes need them
            for table in KEYED_AT_END:
                replace_primary_key(cursor, table)
            for projection in self.projections:
                for statement in projection.schema():
                    cursor.execute(statement)
            if self.store.dialect == "postgres":
                for table in SCOPED_TABLES:
                    cursor.execute(scope_statistics(table))

    def secondary_indexes(self) -> list[str]:
        """The names of the indexes no write of a bulk load needs (not unique but for
        :data:`KEYS_BUILT_AT_END`, not a primary key, not those by which a batch finds the
        summary rows it emptied): a bulk load drops them and builds them once at the end,
        faster than keeping them up row by row."""
        return list(self._secondary_index_statements())

    def _secondary_index_statements(self) -> dict[str, str]:
        """:meth:`secondary_indexes`, each with the statement that creates it."""
        keys = KEYS_BUILT_AT_END if self.store.dialect == "postgres" else frozenset()
        return {
            name: statement
            for projection in self.projections
            for statement in projection.schema()
            if (found := SECONDARY_INDEX.match(statement))
            and ((name := found.group(1)) in keys or " UNIQUE " not in statement)
            and EMPTIED_ROWS not in statement
        }

    def build_secondary_indexes(self, connections: int = INDEX_BUILDERS) -> None:
        """Build the secondary indexes a bulk load dropped, on PostgreSQL ``connections`` at
        a time (each build keeps one core busy), then anything else :meth:`create_tables`
        would."""
        with ThreadPoolExecutor(connections, thread_name_prefix="index-build") as builders:
            for built in [builders.submit(task) for task in self._index_builds(self.tables())]:
                built.result()
        self.create_tables()

    def finish_bulk_load(
        self, derive: Callable[[], None], connections: int = INDEX_BUILDERS
    ) -> None:
        """The end of a bulk load: ``derive`` what the batches left, which keeps about one
        core busy. Meanwhile, on PostgreSQL, ``connections`` build the secondary indexes of
        the tables it only reads and VACUUM (ANALYZE) them; then those of the tables it
        fills. Then anything else :meth:`create_tables` would."""
        filled = self.deals.derived_tables
        read = [table for table in self.tables() if table not in filled]
        with ThreadPoolExecutor(connections, thread_name_prefix="bulk-load-end") as pool:
            beside = [pool.submit(task) for task in self._index_then_vacuum(read)]
            derive()
            after = [pool.submit(task) for task in self._index_then_vacuum(filled)]
            for finished in [*beside, *after]:
                finished.result()
        self.create_tables()

    def _index_builds(self, tables: Sequence[str]) -> list[Callable[[], None]]:
        """Builds of the secondary indexes of ``tables``, one task each (none on SQLite,
        where :meth:`create_tables` builds them one after the other: one writer at a time)."""
        if self.store.dialect != "postgres":
            return []
        return [
            partial(self._build_index, statement)
            for statement in self._secondary_index_statements().values()
            if indexed_table(statement) in tables
        ]

    def _index_then_vacuum(self, tables: Sequence[str]) -> list[Callable[[], None]]:
        """:meth:`_index_builds`, then a ``VACUUM (ANALYZE)`` of each table, an ``ANALYZE``
        of those :data:`ANALYZED_ONLY` (on PostgreSQL: :meth:`ReadModelStore.vacuum_analyze`
        does nothing on SQLite)."""
        vacuums = [
            partial(self.store.vacuum_analyze, table, vacuum=table not in ANALYZED_ONLY)
            for table in tables
        ]
        return [*self._index_builds(tables), *vacuums]

    def _build_index(self, statement: str) -> None:
        """One build, on a core of its own: no parallel workers beside the other work."""
        with self.store.transaction(commit=True) as cursor:
            self.store.lock_schema(cursor, shared=True)
            cursor.execute("SET LOCAL max_parallel_maintenance_workers = 0")
            cursor.execute(statement)

    def drop_secondary_indexes(self) -> None:
        """Drop them; :meth:`create_tables` builds them again."""
        with self.store.transaction(commit=True) as cursor:
            self.store.lock_schema(cursor)
            for name in self.secondary_indexes():
                cursor.execute(f"DROP INDEX IF EXISTS {name}")

    def apply(self, cursor: SqlCursor, events: Sequence[DomainEventProtocol[UUID]]) -> None:
        for projection, received in zip(self.projections, self._route(events), strict=True):
            if received:
                projection.process(cursor, received)

    def _route(
        self, events: Sequence[DomainEventProtocol[UUID]]
    ) -> list[list[DomainEventProtocol[UUID]]]:
        """The events each projection receives, in log order: one look-up per event, where
        each projection sifting the whole batch took ≈ 2.7 of a bulk load's 40 core-seconds
        of Python on the bench's book."""
        received: list[list[DomainEventProtocol[UUID]]] = [[] for _ in self.projections]
        routes = self._routes
        for event in events:
            to = routes.get(type(event))
            if to is None:
                to = routes[type(event)] = tuple(
                    n for n, projection in enumerate(self.projections) if projection.receives(event)
                )
            for n in to:
                received[n].append(event)
        return received

    def clear_derived(self, cursor: SqlCursor) -> None:
        """Empty what :meth:`derive` fills."""
        self.deals.clear_derived(cursor)

    def derive(self, cursor: SqlCursor, share: int = 0, shares: int = 1) -> None:
        """What batches left to the end of a bulk load (:attr:`SqlCursor.derived_at_end`),
        from the rows it loaded, in the caller's transaction: of all records, or of a
        ``share`` of ``shares`` of them (derived side by side into cleared tables).

        On PostgreSQL its groupings get :data:`DERIVE_WORK_MEM`: the planner, which cannot
        tell how few months and stages they come to, otherwise sorts on disk."""
        if cursor.dialect == "postgres":
            cursor.execute(f"SET LOCAL work_mem = '{DERIVE_WORK_MEM}'")
        self.deals.derive(cursor, share, shares)

    def tables(self) -> list[str]:
        return [
            statement.split()[5]
            for projection in self.projections
            for statement in projection.schema()
            if statement.startswith("CREATE TABLE")
        ]

    def clear(self, cursor: SqlCursor) -> None:
        """Empty every read model (for a rebuild), in the caller's transaction."""
        for table in self.tables():
            cursor.execute(f"DELETE FROM {table}")

    @staticmethod
    def is_projected(topic: str) -> bool:
        return topic.startswith(PROJECTED_TOPIC_PREFIXES)


def indexed_table(statement: str) -> str:
    """The table a ``CREATE INDEX … ON table (…)`` statement indexes."""
    return statement.split(" ON ", 1)[1].split()[0]
