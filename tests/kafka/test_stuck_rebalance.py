"""A worker whose consumer never settles into the group leaves it and joins again."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from commands.service import CrmApplication
from crm.kafka_wiring import build_kafka_worker
from crm.settings import Settings
from event_store.read_model_store import ReadModelStore
from event_store.relay import EventRelay
from projections import kafka_worker
from tests.kafka.stream import (
    assert_same_read_models,
    dump,
    generate,
    group_of_this_test,
    read_position,
    rebuilt_from_store,
    wait_for,
)


class NeverSettled:
    """A real consumer that reports itself rebalancing, as a stuck kafka-python 3.0.12 one
    did: the group moved on and it never noticed (no broker can be made to do that)."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer

    def group_metadata(self) -> Any:
        return self._consumer.group_metadata()._replace(state="<rebalancing>")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def test_given_a_consumer_that_never_settles_when_the_limit_passes_then_the_worker_joins_afresh(
    kafka_settings: Settings,
    app: CrmApplication,
    relay: EventRelay,
    read_store: ReadModelStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(kafka_worker, "STUCK_REBALANCE_SECONDS", 0.5)
    generate(app, random.Random(12), clients=10, deals=60, rounds=3)
    head = app.head_position()
    relay.catch_up()
    worker = build_kafka_worker(kafka_settings, group_of_this_test(kafka_settings, "stuck"))
    subscribe = worker._consumer_factory
    consumers: list[Any] = []

    def first_never_settles() -> Any:
        consumer = subscribe() if consumers else NeverSettled(subscribe())
        consumers.append(consumer)
        return consumer

    worker._consumer_factory = first_never_settles
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(consumers) >= 2, 30, "a fresh consumer in place of the stuck one")
        wait_for(lambda: read_position(read_store) == head, 120, f"read position {head}")
    finally:
        stop.set()
        thread.join(timeout=30)
        worker.store.close()

    # The fresh consumer came from the watchdog, not from some failure that also closes one.
    assert any("no stable group membership" in r.getMessage() for r in caplog.records)
    assert_same_read_models(dump(read_store), rebuilt_from_store(app, read_store))
