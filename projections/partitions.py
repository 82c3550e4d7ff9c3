"""A bulk load spread over processes, each folding a disjoint share of the log's records.

In one process the GIL is the limit: profiled on a 295,000-event log, its main thread waited
for PostgreSQL ≈ 40 % of the time while the read-ahead thread decoded ≈ 42 % of it. A second
process folds while the first waits. Each partition reads only its own records' events
(PostgreSQL filters them: :meth:`Partition.condition_sql`), decodes and folds them, and
tracks its own position, so a load stopped midway resumes each partition where it stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import forkserver
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from event_store.read_model_store import sql_text
from projections.garbage import collecting_rarely

RECORD_TOPICS = ("aggregates.client:", "aggregates.contact:", "aggregates.deal:")
"""The records spread over the partitions; every other event (an organization's settings,
users, tokens, pipelines, rates) goes to the first partition."""
POLL_SECONDS = 0.2
FORKSERVER_PRELOAD = ("__main__", "projections.worker")
"""What the server the partitions fork from imports once: the parent's main module (else each
partition runs it again, as spawned processes do) and the projection code."""


@dataclass(frozen=True)
class Partition:
    """One of ``count`` disjoint shares of the records, folded by a process of its own.

    A record's events all fall in one partition, so each row, its history and its stage
    visits are written by one process; the open-pipeline summaries are sums, to which the
    partitions add in any order."""

    number: int
    count: int

    def holds(self, notification: Notification) -> bool:
        """The rule in Python: the record's UUID modulo ``count``; events of no record go to
        the first partition. Partitions read their shares by :meth:`condition_sql`."""
        if not notification.topic.startswith(RECORD_TOPICS):
            return self.number == 0
        record = notification.originator_id
        number = record.int if isinstance(record, UUID) else UUID(record).int
        return number % self.count == self.number

    def condition_sql(self) -> str:
        """:meth:`holds` in PostgreSQL, on the events table's columns: the record's UUID as
        a 128-bit number modulo ``count``, as the sum of its bytes each times its place value
        modulo ``count`` — only the last byte's for a count that divides 256, e.g. two."""
        records = " OR ".join(f"starts_with(topic, {sql_text(topic)})" for topic in RECORD_TOPICS)
        terms = [
            f"get_byte(uuid_send(originator_id), {byte})" + ("" if weight == 1 else f" * {weight}")
            for byte, weight in enumerate(self.place_values())
            if weight
        ]
        mine = f"({records}) AND mod({' + '.join(terms)}, {self.count}) = {self.number}"
        return f"({mine}) OR NOT ({records})" if self.number == 0 else mine

    def place_values(self) -> list[int]:
        """Each of a UUID's 16 bytes' place value modulo ``count``, most significant first."""
        return [pow(256, 15 - byte, self.count) for byte in range(16)]

    def tracking_name(self, name: str) -> str:
        return f"{name}@{self.number}/{self.count}"


@dataclass(frozen=True)
class PartitionProgress:
    """A batch a partition committed: its position and how much it read and folded."""

    partition: int
    position: int
    notifications: int
    events: int


class ProgressReport:
    """What a partition's process calls after each batch: hands the progress to the parent,
    and stops the process (between batches) once the parent is gone."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def __call__(self, progress: PartitionProgress) -> None:
        # the process that asked for this one (forked by the fork server, its parent in
        # name only): its sentinel closes when it ends
        parent = multiprocessing.parent_process()
        if parent is not None and not parent.is_alive():
            raise SystemExit("the bulk load's parent process is gone")
        self.channel.put(progress)


def run_partitions(
    target: Callable[..., None],
    args: tuple[Any, ...],
    count: int,
    on_progress: Callable[[PartitionProgress], None],
) -> None:
    """Run ``target(*args, partition, report)`` in one new process per partition and wait
    for all of them; ``on_progress`` gets each batch, with the position the slowest
    partition has reached. If one fails, the others are stopped and this raises."""
    context = prepare_fork_server()
    channel = context.Queue()
    processes = [
        context.Process(
            target=run_collecting_rarely,
            args=(target, *args, Partition(number, count), ProgressReport(channel)),
            name=f"read-models-partition-{number}",
        )
        for number in range(count)
    ]
    reached = [0] * count
    for process in processes:
        process.start()
    try:
        while True:
            try:
                progress = channel.get(timeout=POLL_SECONDS)
            except queue.Empty:
                exits = [process.exitcode for process in processes]
                if None not in exits or any(exits):  # all done, or one failed
                    break
                continue
            reached[progress.partition] = progress.position
            on_progress(
                PartitionProgress(
                    progress.partition, min(reached), progress.notifications, progress.events
                )
            )
    finally:
        for process in processes:
            if process.exitcode is None:
                process.terminate()
            process.join()
        channel.close()
    failed = [p.name for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"the bulk load failed in {', '.join(failed)}")


def prepare_fork_server() -> multiprocessing.context.ForkServerContext:
    """The context partitions start in, its server started (once): a caller that will run
    partitions may start it early, so that its imports overlap the caller's own work.

    Each partition forks from a server process started once, with the parent's main module
    and the projection code imported, and no pools or threads: spawned, every partition
    imported it all again (a second a process, twice a bulk load)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(FORKSERVER_PRELOAD))
    start_fork_server()
    return context


def start_fork_server() -> None:
    """Start the fork server (once) with the modules this process has on its path. Python 3.11
    starts it with ``python -c``, which puts the current directory first on its path, and
    ignores the path it is given: run from a checkout of other code (a benchmark of a commit
    run from the work tree), the partitions folded with that code. Started in safe-path mode
    (``PYTHONSAFEPATH``), it leaves the current directory out."""
    previous = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        forkserver.ensure_running()
    finally:
        if previous is None:
            del os.environ["PYTHONSAFEPATH"]
        else:
            os.environ["PYTHONSAFEPATH"] = previous


def run_collecting_rarely(target: Callable[..., None], *args: Any) -> None:
    """A partition's process: all of its work is a bulk load's (see :mod:`projections.garbage`)."""
    with collecting_rarely():
        target(*args)
