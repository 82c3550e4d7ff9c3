"""Processes that open a new PostgreSQL event store at the same moment (``crm serve --workers``
starts its web processes and its projection process together) all succeed: the library's
set-up replaces its functions each time, which PostgreSQL refuses to do twice at once."""

from __future__ import annotations

import multiprocessing
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from event_store.application import EventStoreApplication
from event_store.location import StoreLocation
from tests.stores import settings_for

PROCESSES = 6


def open_store(url: str, data_dir: str, start: Barrier, outcomes: Queue[str]) -> None:
    start.wait(timeout=60)
    try:
        EventStoreApplication(StoreLocation.from_settings(Path(data_dir), url)).close()
    except Exception as error:  # the failure is the finding: report it, do not hide it
        outcomes.put(f"{type(error).__name__}: {error}")
    else:
        outcomes.put("opened")


def test_given_a_new_store_when_several_processes_open_it_at_once_then_each_one_succeeds(
    tmp_path: Path,
) -> None:
    context = multiprocessing.get_context("spawn")
    for attempt in range(3):
        with settings_for("postgres", tmp_path / f"var-{attempt}") as settings:
            assert settings.database_url is not None
            start, outcomes = context.Barrier(PROCESSES), context.Queue()
            processes = [
                context.Process(
                    target=open_store,
                    args=(settings.database_url, str(settings.data_dir), start, outcomes),
                )
                for _ in range(PROCESSES)
            ]
            for process in processes:
                process.start()
            found = [outcomes.get(timeout=120) for _ in processes]
            for process in processes:
                process.join(timeout=30)
            assert found == ["opened"] * PROCESSES
