"""The running service: the event store, the read-model store and, in-process, the worker."""

from __future__ import annotations

import threading
import time
from functools import partial
from uuid import UUID

from eventsourcing.domain import Aggregate

from aggregates.api_token import ApiToken
from aggregates.membership import Membership
from aggregates.organization import Organization
from commands.errors import ReadModelsBehind
from commands.service import CrmApplication
from crm.bootstrap import first_run
from crm.identity import Authenticator
from crm.settings import Settings
from crm.startup import created
from event_store.listener import listen_for_new_events
from event_store.read_model_store import ReadModelStore
from projections.administration import AdministrationQueries
from projections.analytics import SalesAnalytics
from projections.audit import AuditQueries
from projections.generations import Generations
from projections.history import RecordHistory
from projections.pipelines import PipelineQueries, open_deal_ids
from projections.queries import RecordQueries
from projections.read_models import ReadModels
from projections.worker import LIVE_CHECK_SECONDS, TRACKING_NAME, ProjectionWorker
from read_api.dependencies import ReadSide

# A projection process of its own waits this long after a partial batch for more events: it
# has a core to itself and would otherwise fold each save alone, at twice PostgreSQL's CPU.
GATHER_SECONDS = 0.01
# In the web process the worker takes its CPU from the commands (one GIL): each batch costs
# ≈ 3 ms before its first event, so it waits longer and makes fewer. A read that asks for a
# position (min_position) does not wait for the gathering.
IN_PROCESS_GATHER_SECONDS = 0.05
IDENTITY_RECORDS = (ApiToken, Membership, Organization)


class Service:
    """Builds every part from the settings; :meth:`start` and :meth:`stop` its threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.location = location = settings.location()
        self.generations = Generations(location)
        self._stores: dict[int, ReadModelStore] = {1: self.generations.registry_store}
        self._sides: dict[int, ReadSide] = {}
        self._live, self._live_checked_at = 1, -LIVE_CHECK_SECONDS
        self.worker: ProjectionWorker | None = None
        ReadModels(self.read_store).create_tables()
        self.commands = CrmApplication(
            location, on_saved=self._on_saved, open_deals_in_stage=self.open_deals_in_stage
        )
        if settings.projections_in_process:
            self.worker = ProjectionWorker(
                self.commands,
                self.read_store,
                batch_size=settings.projection_batch_size,
                follow_live=self.generations,
                gather_seconds=IN_PROCESS_GATHER_SECONDS,
            )
        self.authenticator = Authenticator(self.commands, settings)
        self.first_run_token = first_run(self.commands, settings.data_dir)
        self.history = RecordHistory(self.commands)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def read_store(self) -> ReadModelStore:
        """The live generation's read models (the registry is read at most once a second:
        both generations are complete when a rebuild switches them)."""
        if self.worker is not None:
            return self.worker.store  # the worker moves to a new generation between batches
        now = time.monotonic()
        if now - self._live_checked_at > LIVE_CHECK_SECONDS:
            self._live = self.generations.live().number
            self._live_checked_at = now
        live = self._live
        if live not in self._stores:
            self._stores[live] = ReadModelStore(self.location, live)
        return self._stores[live]

    def current(self) -> ReadSide:
        """The read side over the live generation (a rebuild may have switched it)."""
        store = self.read_store
        side = self._sides.get(store.generation)
        if side is None:
            pipelines = PipelineQueries(store)
            side = self._sides[store.generation] = ReadSide(
                records=RecordQueries(store),
                administration=AdministrationQueries(store),
                audit=AuditQueries(store),
                analytics=SalesAnalytics(store, pipelines.definitions),
                history=self.history,
                pipelines=pipelines,
                wait_for_position=self.wait_for_position,
                read_position=self.read_position,
                max_wait_seconds=self.settings.read_wait_seconds,
            )
        return side

    def start(self) -> None:
        if self.worker is None:
            return
        worker = self.worker
        worker.catch_up()
        thread = threading.Thread(
            target=worker.run, args=(self._stop,), name="projection-worker", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        if self.worker is not None:
            self.worker.wakeup.set()
            self.worker.hurry()
        for thread in self._threads:
            thread.join(timeout=10)
        self.commands.close()
        for store in self._stores.values():
            store.close()

    def read_position(self) -> int:
        worker = self.worker
        if worker is not None and worker.store.generation == self.read_store.generation:
            return worker.last_position  # kept in memory by the in-process worker
        return self.read_store.position(TRACKING_NAME)

    def head_position(self) -> int:
        return self.commands.head_position()

    def wait_for_position(self, position: int, timeout: float) -> bool:
        if self.worker is not None and self.worker.store.generation == self.read_store.generation:
            return self.worker.wait_for(position, timeout)
        deadline = time.monotonic() + timeout
        pause = 0.002
        while self.read_position() < position:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return True

    def open_deals_in_stage(
        self, organization_id: UUID, pipeline_id: str, stage_id: str
    ) -> list[UUID]:
        """The open deals of a stage, once the read models include every stored event."""
        if not self.wait_for_position(self.head_position(), self.settings.read_wait_seconds):
            raise ReadModelsBehind()
        return open_deal_ids(self.read_store, organization_id, pipeline_id, stage_id)

    def _on_saved(self, position: int, changed: list[Aggregate]) -> None:
        if self.worker is not None:
            self.worker.wakeup.set()
        if any(isinstance(record, IDENTITY_RECORDS) for record in changed):
            self.authenticator.forget()


def follow_store(settings: Settings, stop: threading.Event) -> None:
    """Run the projection worker as its own process's main loop (``crm project``)."""
    location = settings.location()
    events = created(partial(CrmApplication, location))
    generations = created(partial(Generations, location))
    store = created(partial(ReadModelStore, location, generations.live().number))
    worker = created(
        partial(
            ProjectionWorker,
            events,
            store,
            batch_size=settings.projection_batch_size,
            follow_live=generations,
            gather_seconds=GATHER_SECONDS,
        )
    )
    if location.postgres is not None:
        listen_for_new_events(location.postgres, events.notify_channel, worker.wakeup, stop)
    worker.run(stop)
