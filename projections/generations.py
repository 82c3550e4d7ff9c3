"""Generations of the read models, for rebuilding them without downtime.

The live generation serves every read. A rebuild fills a new generation beside it from the
whole event log; once it has caught up, one transaction makes it live (readers and the live
worker follow at their next request or batch). A rebuild that fails or is interrupted leaves
the live generation untouched and resumes where it stopped. Each generation records the
projection version that built it, so code that needs a rebuild is reported by ``crm status``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from eventsourcing.persistence import PersistenceError

from event_store.location import StoreLocation
from event_store.read_model_store import ReadModelStore

PROJECTION_VERSION = 7  # 7: closed deals summed by close month
"""Bump when a projection's code changes what it writes: existing read models then need a
rebuild (``crm replay``), which ``crm status`` reports."""

REGISTRY = "read_model_generations"


class State(StrEnum):
    BUILDING = "building"
    LIVE = "live"
    RETIRED = "retired"


@dataclass(frozen=True)
class Generation:
    number: int
    state: State
    projection_version: int

    @property
    def needs_rebuild(self) -> bool:
        return self.projection_version != PROJECTION_VERSION


class Generations:
    """The registry of generations, kept in the first generation's database."""

    def __init__(self, location: StoreLocation, first: ReadModelStore | None = None) -> None:
        self.location = location
        self.registry_store = first or ReadModelStore(location, 1)
        if not self._has_live():
            self._create()

    def _has_live(self) -> bool:
        """Whether the registry exists with a live generation (read only: processes
        starting beside busy writers should not need the write lock)."""
        try:
            return any(g.state is State.LIVE for g in self.all())
        except PersistenceError:
            return False

    def _create(self) -> None:
        with self.registry_store.transaction(commit=True) as cursor:
            self.registry_store.lock_schema(cursor)
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {REGISTRY} (generation INTEGER PRIMARY KEY, "
                "state TEXT NOT NULL, projection_version INTEGER NOT NULL, "
                "created_at_us BIGINT NOT NULL, switched_at_us BIGINT)"
            )
            cursor.execute(
                f"INSERT INTO {REGISTRY} (generation, state, projection_version, created_at_us) "
                "VALUES (1, ?, ?, ?) ON CONFLICT (generation) DO NOTHING",
                [State.LIVE.value, PROJECTION_VERSION, now_us()],
            )

    def all(self) -> list[Generation]:
        with self.registry_store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT generation, state, projection_version FROM {REGISTRY} ORDER BY generation"
            )
            return [
                Generation(int(r["generation"]), State(r["state"]), int(r["projection_version"]))
                for r in cursor.fetchall()
            ]

    def live(self) -> Generation:
        return next(g for g in self.all() if g.state is State.LIVE)

    def building(self) -> Generation | None:
        return next((g for g in self.all() if g.state is State.BUILDING), None)

    def start_building(self) -> Generation:
        """A new generation to fill, or the one an interrupted rebuild left."""
        existing = self.building()
        if existing is not None:
            return existing
        with self.registry_store.transaction(commit=True) as cursor:
            cursor.execute(f"SELECT MAX(generation) AS last FROM {REGISTRY}")
            row = cursor.fetchone()
            number = int(row["last"]) + 1 if row is not None else 2
            cursor.execute(
                f"INSERT INTO {REGISTRY} (generation, state, projection_version, created_at_us) "
                "VALUES (?, ?, ?, ?)",
                [number, State.BUILDING.value, PROJECTION_VERSION, now_us()],
            )
        return Generation(number, State.BUILDING, PROJECTION_VERSION)

    def make_live(self, number: int) -> None:
        """Switch reads to generation ``number`` in one transaction."""
        with self.registry_store.transaction(commit=True) as cursor:
            cursor.execute(
                f"UPDATE {REGISTRY} SET state = ? WHERE state = ?",
                [State.RETIRED.value, State.LIVE.value],
            )
            cursor.execute(
                f"UPDATE {REGISTRY} SET state = ?, switched_at_us = ? WHERE generation = ?",
                [State.LIVE.value, now_us(), number],
            )

    def drop_retired(self, keep: int = 1) -> list[int]:
        """Drop the storage of retired generations but the ``keep`` newest; return them."""
        retired = [g.number for g in self.all() if g.state is State.RETIRED and g.number != 1]
        dropped = retired[: max(len(retired) - keep, 0)]
        for number in dropped:
            ReadModelStore(self.location, number).destroy()
            with self.registry_store.transaction(commit=True) as cursor:
                cursor.execute(f"DELETE FROM {REGISTRY} WHERE generation = ?", [number])
        return dropped


def now_us() -> int:
    return int(time.time() * 1_000_000)
