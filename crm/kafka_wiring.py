"""The event stream's processes, built from the settings: ``crm relay`` and Kafka-fed workers."""

from __future__ import annotations

import logging
import threading
from functools import partial

from commands.service import CrmApplication
from crm.settings import Settings
from crm.startup import created
from event_store.envelope import EnvelopeDecoder
from event_store.listener import listen_for_new_events
from event_store.read_model_store import ReadModelStore
from event_store.relay import EventRelay, ensure_topic, new_producer
from projections.generations import Generations
from projections.kafka_worker import KafkaProjectionWorker, new_consumer

log = logging.getLogger(__name__)
GENERATION_POLL_SECONDS = 2.0


def build_relay(settings: Settings) -> EventRelay:
    """The relay over the settings' event store, recording its position beside the read models."""
    location = settings.location()
    bootstrap, topic = settings.kafka_bootstrap_servers, settings.kafka_topic
    # The service's application: its events table, its mapper.
    events = created(partial(CrmApplication, location))
    store = created(partial(ReadModelStore, location))  # the relay's position: generation 1
    return created(
        partial(
            EventRelay,
            events,
            store,
            partial(new_producer, bootstrap),
            topic=topic,
            batch_size=settings.relay_batch_size,
            prepare_topic=partial(ensure_topic, bootstrap, topic, settings.kafka_partitions),
        )
    )


def run_relay(settings: Settings, stop: threading.Event) -> None:
    """Publish the event log until ``stop`` (``crm relay``); woken by NOTIFY on PostgreSQL."""
    relay = build_relay(settings)
    postgres = settings.location().postgres
    if postgres is not None:
        listen_for_new_events(postgres, relay.events.notify_channel, relay.wakeup, stop)
    try:
        relay.run(stop)
    finally:
        relay.close()
        relay.events.close()
        relay.store.close()


def build_kafka_worker(
    settings: Settings, group: str, generation: int = 1
) -> KafkaProjectionWorker:
    """A member of consumer group ``group`` feeding one generation of the read models."""
    location = settings.location()
    events = created(partial(CrmApplication, location))  # for its transcoder: the events' types
    transcoder = events.mapper.transcoder
    events.close()
    bootstrap, topic = settings.kafka_bootstrap_servers, settings.kafka_topic

    def subscribe() -> object:
        # so that no consumer creates it with broker defaults
        ensure_topic(bootstrap, topic, settings.kafka_partitions)
        return new_consumer(bootstrap, group)

    store = created(partial(ReadModelStore, location, generation))
    relay_store = store if generation == 1 else created(partial(ReadModelStore, location))
    return created(
        partial(
            KafkaProjectionWorker,
            subscribe,
            store,
            EnvelopeDecoder(transcoder),
            group=group,
            topic=topic,
            batch_size=settings.projection_batch_size,
            relay_store=relay_store,
        )
    )


def follow_kafka(settings: Settings, group: str, stop: threading.Event) -> None:
    """Run one Kafka-fed projection worker until ``stop`` (``crm project --source kafka``),
    feeding the live generation of the read models; when a rebuild makes another generation
    live, start over on it (from its own stored offsets: none at first, so the new generation
    reads the topic from the start — redelivered events fold once)."""
    generations = created(partial(Generations, settings.location()))
    while not stop.is_set():
        live = generations.live().number
        worker_stop = threading.Event()
        watcher = threading.Thread(
            target=_stop_on_switch, args=(generations, live, stop, worker_stop), daemon=True
        )
        watcher.start()
        worker = build_kafka_worker(settings, group, live)
        try:
            worker.run(worker_stop)
        finally:
            worker.store.close()
            worker_stop.set()
            watcher.join(timeout=5)


def _stop_on_switch(
    generations: Generations, live: int, stop: threading.Event, worker_stop: threading.Event
) -> None:
    """Stop the worker when the process stops or another generation becomes live."""
    polled = 0.0
    while not worker_stop.is_set():
        if stop.wait(0.2):
            break
        polled += 0.2
        if polled >= GENERATION_POLL_SECONDS:
            polled = 0.0
            if generations.live().number != live:
                log.info("read models: generation %d is live now", generations.live().number)
                break
    worker_stop.set()
