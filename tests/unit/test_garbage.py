"""A bulk load collects garbage rarely, and leaves the collector as it found it."""

from __future__ import annotations

import gc

from projections.garbage import BULK_LOAD_THRESHOLDS, collecting_rarely


def test_given_the_collectors_thresholds_when_collecting_rarely_then_the_bulk_loads_hold() -> None:
    before = gc.get_threshold()
    assert before != BULK_LOAD_THRESHOLDS

    with collecting_rarely():
        during = gc.get_threshold()

    assert during == BULK_LOAD_THRESHOLDS
    assert gc.get_threshold() == before
