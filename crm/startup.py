"""Building a process's stores while other processes start beside it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from eventsourcing.persistence import IntegrityError, InternalError

from event_store.sqlite_locking import is_sqlite_busy

T = TypeVar("T")
STARTUP_ATTEMPTS = 5


def created(build: Callable[[], T]) -> T:
    """``build()``, tried again when it lost a race to create the same schema.

    The relay and the workers often start together on a fresh database and create the same
    tables at once. PostgreSQL then fails all but one of them with a catalog conflict (a
    unique violation, or "tuple concurrently updated"); SQLite may answer "database is
    locked" where the ``eventsourcing`` library sets a new file's journal mode or creates its
    tables. The tables exist a moment later.
    """
    for attempt in range(1, STARTUP_ATTEMPTS + 1):
        try:
            return build()
        except Exception as error:
            lost_a_race = isinstance(error, IntegrityError | InternalError) or is_sqlite_busy(error)
            if not lost_a_race or attempt == STARTUP_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")
