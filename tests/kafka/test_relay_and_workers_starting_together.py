"""The relay and several Kafka-fed workers started at the same moment on a new SQLite data
folder (as ``compose.yaml``'s services or a test's processes are) all start: each creates the
same files, journal mode and tables, and SQLite refused all but one of them with "database is
locked" — a worker died of it in CI."""

from __future__ import annotations

import multiprocessing
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from crm.kafka_wiring import build_kafka_worker, build_relay
from crm.settings import Settings
from crm.startup import created
from projections.generations import Generations

WORKERS = 3
ROUNDS = 3


def start(role: str, data_dir: str, barrier: Barrier, outcomes: Queue[str]) -> None:
    """Build what ``crm relay`` or ``crm project --source kafka`` builds before it polls
    (neither needs the broker until then)."""
    settings = Settings(
        data_dir=Path(data_dir),
        database_url=None,
        kafka_bootstrap_servers="127.0.0.1:9",
        kafka_topic="crm.events.never-polled",
    )
    barrier.wait(timeout=60)
    try:
        if role == "relay":
            build_relay(settings)
        else:
            live = created(lambda: Generations(settings.location())).live()
            build_kafka_worker(settings, "starting-together", live.number)
    except Exception as error:  # the failure is the finding: report it, do not hide it
        outcomes.put(f"{role}: {type(error).__name__}: {error}")
    else:
        outcomes.put(f"{role}: started")


def test_given_a_new_sqlite_folder_when_the_relay_and_workers_start_at_once_then_all_start(
    tmp_path: Path,
) -> None:
    context = multiprocessing.get_context("spawn")
    roles = ["relay"] + ["worker"] * WORKERS
    for attempt in range(ROUNDS):
        data_dir = tmp_path / f"var-{attempt}"
        barrier, outcomes = context.Barrier(len(roles)), context.Queue()
        processes = [
            context.Process(target=start, args=(role, str(data_dir), barrier, outcomes))
            for role in roles
        ]
        for process in processes:
            process.start()
        found = sorted(outcomes.get(timeout=120) for _ in processes)
        for process in processes:
            process.join(timeout=30)
        assert found == sorted(f"{role}: started" for role in roles)
