"""A busy projection worker gathers events into larger batches, but never makes a reader who
asks for a position wait for the gathering."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from aggregates.client import Client
from aggregates.context import EventContext
from commands.service import CrmApplication
from crm.identity import DEFAULT_ADMIN_ID, DEFAULT_ORGANIZATION_ID
from crm.settings import Settings
from event_store.read_model_store import ReadModelStore
from projections.worker import ProjectionWorker

GATHER_SECONDS = 30.0  # far longer than any test may wait


def register_a_client(app: CrmApplication, worker: ProjectionWorker) -> int:
    command_id = uuid4()
    context = EventContext(
        DEFAULT_ORGANIZATION_ID, DEFAULT_ADMIN_ID, datetime.now(UTC), command_id, command_id
    )
    client = Client(
        name="Acme", category="prospect", status="prospect", details={}, context=context
    )
    (recording,) = app.save(client)
    worker.wakeup.set()  # as the service's on_saved does
    return recording.notification.id


def folded(worker: ProjectionWorker, position: int) -> bool:
    """Whether the worker folds ``position`` within 10 s, watched without asking it to."""
    deadline = time.monotonic() + 10
    while worker.last_position < position and time.monotonic() < deadline:
        time.sleep(0.01)
    return worker.last_position >= position


@pytest.fixture
def gathering_worker(settings: Settings) -> Iterator[tuple[CrmApplication, ProjectionWorker]]:
    location = settings.location()
    app = CrmApplication(location)
    store = ReadModelStore(location)
    worker = ProjectionWorker(app, store, gather_seconds=GATHER_SECONDS)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield app, worker
    finally:
        stop.set()
        worker.wakeup.set()
        worker.hurry()
        thread.join(GATHER_SECONDS + 5)
        store.close()
        app.close()


def test_given_a_gathering_worker_when_a_reader_waits_for_a_position_then_it_is_folded_at_once(
    gathering_worker: tuple[CrmApplication, ProjectionWorker],
) -> None:
    app, worker = gathering_worker
    first = register_a_client(app, worker)
    assert folded(worker, first), "the first event after a quiet spell goes at once"
    second = register_a_client(app, worker)  # the worker is now gathering for GATHER_SECONDS
    time.sleep(0.2)
    assert worker.last_position == first, "the second event waits for the gathering"

    started = time.monotonic()
    assert worker.wait_for(second, timeout=10)

    assert time.monotonic() - started < 5
