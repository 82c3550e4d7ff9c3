"""Faults against a real broker and real processes: an outage, a killed relay, a killed worker.

The relay (``crm relay``) and the Kafka-fed workers (``crm project --source kafka``) run as child
processes. After each fault, every stored event must be in the topic, and the read models must
equal a rebuild from the event store, row by row: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition  # type: ignore[import-untyped]

from commands.service import CrmApplication
from crm.settings import Settings
from event_store.read_model_store import ReadModelStore
from event_store.relay import ensure_topic, relay_tracking_name
from tests.integration.processes import CrmProcess, crm_environment, running, wait_until
from tests.kafka.stream import (
    assert_same_read_models,
    broker_address,
    dump,
    generate,
    group_of_this_test,
    read_position,
    read_topic,
    rebuilt_from_store,
    writing,
)

pytestmark = pytest.mark.slow

KAFKA_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka.sh"
RELAY_KILLS = 4
MAX_RELAY_KILL_ATTEMPTS = 12


@dataclass
class Broker:
    """A broker of this module's own, which the outage test may stop and start."""

    directory: Path
    bootstrap: str

    def _script(self, command: str) -> None:
        subprocess.run(
            [str(KAFKA_SCRIPT), command, str(self.directory)],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=120,
        )

    def stop(self) -> None:
        self._script("stop-broker")

    def start(self) -> None:
        self._script("start-broker")


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker_address()  # skips (or fails on CI) where the suite has no Kafka
    directory = tmp_path_factory.mktemp("own-kafka")
    started = subprocess.run(
        [str(KAFKA_SCRIPT), "start", str(directory)],
        check=True,
        capture_output=True,
        text=True,
        timeout=180,
    )
    bootstrap = started.stdout.strip().rpartition("=")[2]
    try:
        yield Broker(directory, bootstrap)
    finally:
        subprocess.run([str(KAFKA_SCRIPT), "stop", str(directory)], timeout=120, check=False)


def stream_environment(settings: Settings, **overrides: str) -> dict[str, str]:
    return crm_environment(
        settings,
        CRM_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        CRM_KAFKA_TOPIC=settings.kafka_topic,
        CRM_RELAY_BATCH_SIZE=str(settings.relay_batch_size),
        CRM_PROJECTION_BATCH_SIZE=str(settings.projection_batch_size),
        **overrides,
    )


def worker_args(settings: Settings, group: str) -> list[str]:
    return ["project", "--source", "kafka", "--group", group_of_this_test(settings, group)]


def relay_position(store: ReadModelStore, settings: Settings) -> int:
    return store.position(relay_tracking_name(settings.kafka_topic))


def assert_every_event_in_the_topic(settings: Settings, app: CrmApplication) -> int:
    """Every stored event is in the topic (maybe more than once); returns the message count."""
    head = app.head_position()
    stored = {
        (str(n.originator_id), n.originator_version)
        for n in app.recorder.select_notifications(start=1, limit=head)
    }
    messages = read_topic(settings.kafka_bootstrap_servers, settings.kafka_topic)
    published = set()
    for message in messages:
        envelope = json.loads(message.value)
        published.add((envelope["subject"], envelope["aggregateversion"]))
    assert published == stored, f"{len(stored - published)} stored events are not in Kafka"
    return len(messages)


def test_a_broker_outage_while_the_relay_publishes_and_workers_consume_loses_nothing(
    own_broker: Broker,
    settings: Settings,
    tmp_path: Path,
) -> None:
    settings = settings.model_copy(
        update={
            "kafka_bootstrap_servers": own_broker.bootstrap,
            "kafka_topic": f"crm.events.outage-{uuid.uuid4().hex[:12]}",
            "relay_batch_size": 200,
            "projection_batch_size": 200,
        }
    )
    app = CrmApplication(settings.location())
    store = ReadModelStore(settings.location())
    try:
        deals = generate(app, random.Random(20), clients=20, deals=300, rounds=3)
        env = stream_environment(settings)
        with (
            running(["relay"], env, tmp_path / "relay.log") as relay,
            running(worker_args(settings, "outage"), env, tmp_path / "w1.log") as w1,
            running(worker_args(settings, "outage"), env, tmp_path / "w2.log") as w2,
        ):
            with writing(app, deals, seed=21):
                wait_until(lambda: read_position(store) > 0, 60, "read models fed", w1)
                own_broker.stop()
                time.sleep(2.5)  # a batch acknowledged just before the stop may be recorded
                stuck_at = relay_position(store, settings)
                time.sleep(2.0)
                assert relay_position(store, settings) == stuck_at, "recorded without an ack"
                assert app.head_position() > stuck_at, "no writes during the outage"
                own_broker.start()
                time.sleep(1.0)
            head = app.head_position()
            for process in (relay, w1, w2):
                assert process.is_running(), process.output()
            wait_until(lambda: read_position(store) == head, 120, f"read position {head}", w2)
            assert relay.stop() == 0, relay.output()
            assert w1.stop() == 0, w1.output()
            assert w2.stop() == 0, w2.output()

        assert_every_event_in_the_topic(settings, app)
        assert_same_read_models(dump(store), rebuilt_from_store(app, store))
    finally:
        app.close()
        store.close()


class TopicSize:
    """How many messages the topic holds (duplicates included)."""

    def __init__(self, settings: Settings) -> None:
        ensure_topic(settings.kafka_bootstrap_servers, settings.kafka_topic)
        self._consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers, metrics_enabled=False
        )
        topic = settings.kafka_topic
        self._partitions = [
            TopicPartition(topic, p) for p in self._consumer.partitions_for_topic(topic)
        ]

    def __call__(self) -> int:
        return sum(self._consumer.end_offsets(self._partitions).values())

    def close(self) -> None:
        self._consumer.close(autocommit=False)


def kill_relay_mid_batch(
    env: dict[str, str], log_path: Path, store: ReadModelStore, settings: Settings, head: int
) -> tuple[int, int]:
    """SIGKILL ``crm relay`` while it publishes, preferably when the topic holds messages of a
    batch whose position it has not recorded yet; return (kills, kills inside that window)."""
    topic_size = TopicSize(settings)
    kills = in_window = 0
    try:
        for _ in range(MAX_RELAY_KILL_ATTEMPTS):
            if kills >= RELAY_KILLS and in_window >= 1:
                break
            size_before, before = topic_size(), relay_position(store, settings)

            def unrecorded_in_topic(size_before: int = size_before, before: int = before) -> bool:
                in_topic = topic_size()  # first: the position read next can only be newer
                recorded = relay_position(store, settings)
                return in_topic > size_before + (recorded - before)

            def publishing(before: int = before) -> bool:
                return relay_position(store, settings) > before

            with running(["relay"], env, log_path) as relay:
                wait_until(publishing, 60, "publishing", relay)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not unrecorded_in_topic():
                    pass
                relay.kill()
            if relay_position(store, settings) < head:
                kills += 1
                in_window += unrecorded_in_topic()
    finally:
        topic_size.close()
    return kills, in_window


def test_a_relay_killed_mid_batch_again_and_again_loses_no_event_and_counts_none_twice(
    kafka_settings: Settings,
    app: CrmApplication,
    read_store: ReadModelStore,
    tmp_path: Path,
) -> None:
    settings = kafka_settings.model_copy(update={"relay_batch_size": 500})
    generate(app, random.Random(31), clients=40, deals=700, rounds=8)
    head = app.head_position()
    env = stream_environment(settings)
    log_path = tmp_path / "relay.log"

    kills, in_window = kill_relay_mid_batch(env, log_path, read_store, settings, head)
    with running(["relay"], env, log_path) as relay:
        wait_until(lambda: relay_position(read_store, settings) == head, 60, "the relay", relay)
        assert relay.stop() == 0, relay.output()
    messages = assert_every_event_in_the_topic(settings, app)
    with (
        running(worker_args(settings, "after-kills"), env, tmp_path / "w1.log") as w1,
        running(worker_args(settings, "after-kills"), env, tmp_path / "w2.log"),
    ):
        wait_until(lambda: read_position(read_store) == head, 120, f"read position {head}", w1)

    assert kills >= RELAY_KILLS
    assert in_window >= 1, "no kill landed between publishing a batch and recording it"
    assert messages > head
    assert_same_read_models(dump(read_store), rebuilt_from_store(app, read_store))


def test_a_worker_killed_during_a_rebalance_leaves_its_partitions_to_the_survivors(
    kafka_settings: Settings,
    app: CrmApplication,
    read_store: ReadModelStore,
    tmp_path: Path,
) -> None:
    settings = kafka_settings.model_copy(update={"projection_batch_size": 50})
    deals = generate(app, random.Random(40), clients=20, deals=300, rounds=3)
    env = stream_environment(settings, CRM_LOG_LEVEL="info")
    logs = [tmp_path / f"w{n}.log" for n in (1, 2, 3)]

    with (
        running(["relay"], env, tmp_path / "relay.log") as relay,
        running(worker_args(settings, "rebalance"), env, logs[0]) as w1,
        running(worker_args(settings, "rebalance"), env, logs[1]) as w2,
    ):
        with writing(app, deals, seed=41):
            wait_until(lambda: read_position(read_store) > 0, 60, "the first batches", w1)
            revocations = logs[0].read_text().count("partitions revoked")
            w3 = CrmProcess(worker_args(settings, "rebalance"), env, logs[2])
            try:
                wait_until(
                    lambda: logs[0].read_text().count("partitions revoked") > revocations,
                    60,
                    "a rebalance as the third worker joins",
                    w1,
                    pause=0.002,
                )
                w1.kill()
                head_at_kill = app.head_position()
                time.sleep(2.0)  # the dead member's partitions keep receiving events
            except BaseException:
                w3.stop()
                raise
        try:
            head = app.head_position()
            wait_until(lambda: read_position(read_store) == head, 120, f"read position {head}", w2)
            for process in (relay, w2, w3):
                assert process.is_running(), process.output()
            assert w2.stop() == 0, w2.output()
            assert w3.stop() == 0, w3.output()
        finally:
            w3.stop()

    assert head > head_at_kill
    assert_same_read_models(dump(read_store), rebuilt_from_store(app, read_store))
