"""Reading the records a command needs together, in one query: one round trip, not one each.

On PostgreSQL a round trip costs more than the decision it feeds. A deal command that read its
deal and then its pipeline in two queries ran at ≈ 420 commands/s over HTTP on 2 cores; read
in one, ≈ 480 (lab figures in bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Lock
from typing import TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

TAny = TypeVar("TAny", bound=Aggregate)


@dataclass(frozen=True)
class LoadedRecords:
    """The records one query asked for, and those of them that exist."""

    asked: frozenset[UUID]
    found: dict[UUID, Aggregate]

    def holds(self, record_id: UUID) -> bool:
        """Whether the query asked for this record (found or not)."""
        return record_id in self.asked

    def get(self, aggregate_type: type[TAny], record_id: UUID) -> TAny | None:
        """The record with this id if it exists and is an ``aggregate_type``, else None."""
        record = self.found.get(record_id)
        return record if isinstance(record, aggregate_type) else None


class PipelinesInUse:
    """The pipeline records each organization's deal commands used lately.

    A deal names its pipeline, so the pipeline could only be read after the deal. A deal
    command reads these beside its deal instead, in the deal's own query. They are hints,
    not a cache: the pipelines' events are read afresh with the deal every time, and a deal
    in a pipeline not among them reads it in a second query, as before.
    """

    MAX_ORGANIZATIONS = 10_000
    MAX_PER_ORGANIZATION = 8

    def __init__(self) -> None:
        self._by_organization: dict[UUID, frozenset[UUID]] = {}
        self._lock = Lock()

    def of(self, organization_id: UUID) -> frozenset[UUID]:
        return self._by_organization.get(organization_id, frozenset())

    def used(self, organization_id: UUID, pipeline_record_id: UUID) -> None:
        if pipeline_record_id in self.of(organization_id):
            return
        with self._lock:
            if len(self._by_organization) >= self.MAX_ORGANIZATIONS:
                self._by_organization.clear()
            known = self.of(organization_id)
            if len(known) >= self.MAX_PER_ORGANIZATION:
                known = frozenset()
            self._by_organization[organization_id] = known | {pipeline_record_id}
