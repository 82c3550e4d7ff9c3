"""Python's cyclic garbage collector during a bulk load.

Folding a batch of thousands of events allocates hundreds of thousands of small containers (decoded
events, rows, keys), nearly none of them in a reference cycle. At Python's default threshold
(a young collection every 700 net allocations of containers) the collector runs hundreds of
times per batch, and every so often walks the older objects too. On the benchmark's
295,000-event book, the partitions' fold took 20.3 s at the default and 17.9 s with the first
threshold at 50,000 — the same as with the collector switched off (lab, paired runs).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BULK_LOAD_THRESHOLDS = (50_000, 20, 20)


@contextmanager
def collecting_rarely() -> Iterator[None]:
    """Collect garbage at :data:`BULK_LOAD_THRESHOLDS` for a while (process-wide), then as
    before."""
    before = gc.get_threshold()
    gc.set_threshold(*BULK_LOAD_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
