"""A bulk load's partitions are processes of their own: when the process that started them
dies (SIGKILL, no clean-up), they must stop too rather than go on writing a load nobody
will finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from commands.service import CrmApplication
from tests.replay.test_bulk_load import record_a_book
from tests.stores import settings_for

MARKER = "CRM_TEST_BULK_LOAD_MARKER"
BOOKS = 8
STOP_SECONDS = 3.0
PARENT = """
import sys
from pathlib import Path
from commands.service import CrmApplication
from event_store.location import StoreLocation
from event_store.read_model_store import ReadModelStore
from projections.worker import ProjectionWorker

location = StoreLocation.from_settings(Path("unused"), sys.argv[1])
worker = ProjectionWorker(
    CrmApplication(location), ReadModelStore(location, 2), batch_size=2,
    bulk_load_batch_size=2, bulk_load_events=1, partitions=2,
)
worker.catch_up(on_batch=lambda result: print("folding", flush=True))
"""


def processes_with(marker: str) -> list[int]:
    """The processes whose environment holds ``marker`` (the parent's, inherited)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environment.split(b"\0"):
            found.append(int(entry.name))
    return found


def test_given_a_partitioned_bulk_load_when_its_parent_is_killed_then_the_partitions_stop(
    tmp_path: Path,
) -> None:
    with settings_for("postgres", tmp_path / "var") as settings:
        app = CrmApplication(settings.location())
        for _ in range(BOOKS):  # at 2 events a batch, longer to fold than STOP_SECONDS
            record_a_book(app)
        app.close()
        marker = f"{MARKER}={uuid.uuid4().hex}"
        env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
        parent = subprocess.Popen(
            [sys.executable, "-c", PARENT, str(settings.database_url)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            assert parent.stdout is not None
            first = parent.stdout.readline()
            assert first.strip() == "folding", first + parent.stdout.read()
            folding = [pid for pid in processes_with(marker) if pid != parent.pid]
            parent.kill()
            parent.wait(timeout=10)
            deadline = time.monotonic() + STOP_SECONDS
            while processes_with(marker) and time.monotonic() < deadline:
                time.sleep(0.1)
            left = processes_with(marker)
        finally:
            for pid in processes_with(marker):
                os.kill(pid, signal.SIGKILL)
            parent.kill()

    assert len(folding) >= 2, "the partitions (and their fork server) were running"
    assert left == [], "partitions went on after their parent was killed"
