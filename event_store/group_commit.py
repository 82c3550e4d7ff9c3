"""Group commit: concurrent saves share one transaction, each still atomic on its own.

On PostgreSQL the library serialises writers on an EXCLUSIVE table lock held until commit, so
one save per transaction caps throughput at one commit round-trip per command whatever the
concurrency. Here the first waiting writer becomes the leader, takes every save queued behind
it and inserts them all in one ``insert_events`` call. If that batch hits a conflict (a stale
version, a claimed email, a duplicate idempotency key), nothing of it was committed, and the
leader inserts the saves one by one so that only the conflicting ones fail.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    Notification,
    StoredEvent,
)

MAX_SAVES_PER_TRANSACTION = 100


@dataclass
class _PendingSave:
    stored_events: list[StoredEvent]
    done: threading.Event = field(default_factory=threading.Event)
    notification_ids: Sequence[int] = ()
    error: BaseException | None = None


class GroupCommit:
    """Inserts the stored events of concurrent saves in shared transactions."""

    def __init__(self, recorder: ApplicationRecorder, max_saves: int = MAX_SAVES_PER_TRANSACTION):
        self.recorder = recorder
        self.max_saves = max_saves
        self._queue: deque[_PendingSave] = deque()
        self._lock = threading.Lock()
        self._leader_active = False

    def insert(self, stored_events: list[StoredEvent]) -> Sequence[int]:
        """Insert one save's events atomically; return their notification ids."""
        pending = _PendingSave(stored_events)
        with self._lock:
            self._queue.append(pending)
            lead = not self._leader_active
            if lead:
                self._leader_active = True
        if lead:
            self._lead()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.notification_ids

    def _lead(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._leader_active = False
                    return
                batch = [
                    self._queue.popleft() for _ in range(min(len(self._queue), self.max_saves))
                ]
            self._commit(batch)

    def _commit(self, batch: list[_PendingSave]) -> None:
        if len(batch) > 1:
            try:
                ids = self.recorder.insert_events([e for p in batch for e in p.stored_events])
            except IntegrityError:
                pass  # nothing was committed: find the conflicting saves one by one
            except BaseException as error:  # every waiter must learn the outcome
                self._finish(batch, error)
                return
            else:
                self._distribute(batch, ids or [])
                return
        for pending in batch:
            try:
                pending.notification_ids = self.recorder.insert_events(pending.stored_events) or []
            except BaseException as error:
                pending.error = error
            pending.done.set()

    @staticmethod
    def _distribute(batch: list[_PendingSave], ids: Sequence[int]) -> None:
        start = 0
        for pending in batch:
            end = start + len(pending.stored_events)
            pending.notification_ids = ids[start:end]
            start = end
            pending.done.set()

    @staticmethod
    def _finish(batch: list[_PendingSave], error: BaseException) -> None:
        for pending in batch:
            pending.error = error
            pending.done.set()


def notifications_for(
    stored_events: Sequence[StoredEvent], notification_ids: Sequence[int]
) -> list[Notification]:
    return [
        Notification(
            originator_id=s.originator_id,
            originator_version=s.originator_version,
            topic=s.topic,
            state=s.state,
            id=n_id,
        )
        for s, n_id in zip(stored_events, notification_ids, strict=True)
    ]
