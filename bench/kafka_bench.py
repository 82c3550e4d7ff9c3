"""Benchmarks of the event stream (issue 3), each beside a baseline measured in the same run.

1. relay throughput: ``crm relay``'s publishing loop (store → envelope → Kafka, acknowledged,
   position recorded) over a prefilled PostgreSQL store, beside the raw rate of kafka-python
   sending the very same messages, with the same producer, without the store;
2. projection throughput with 1 and 2 Kafka-fed workers (``crm project --source kafka`` child
   processes of one consumer group, each a fresh read-model database), beside the store-fed
   worker rebuilding the same read models;
3. end-to-end lag under a steady command rate: a command accepted (saved) → its deal's row in
   the read models updated by a Kafka-fed worker, with ``crm relay`` and one worker running as
   processes; also → the read position (what ``min_position`` reads wait for) covering it.

Run with ``bench/kafka.sh`` (it starts PostgreSQL and Kafka when none is given); prints a
markdown table and writes it to ``bench/results/kafka-<timestamp>.md``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from aggregates.client import Client
from aggregates.context import EventContext
from aggregates.deal import Deal
from aggregates.pipeline import DEFAULT_PIPELINE
from commands import models
from commands.service import CommandMeta, CrmApplication
from crm.identity import DEFAULT_ORGANIZATION_ID
from crm.kafka_wiring import build_relay
from crm.settings import Settings
from event_store.envelope import EnvelopeEncoder
from event_store.read_model_store import ReadModelStore
from event_store.relay import ensure_topic, new_producer
from projections.kafka_worker import OFFSETS_TABLE
from projections.worker import TRACKING_NAME, ProjectionWorker

REPO = Path(__file__).resolve().parent.parent
CRM = Path(sys.executable).with_name("crm")
OPEN_STAGES = DEFAULT_PIPELINE.open_stage_ids()


# --- places --------------------------------------------------------------------------------


def database(admin_url: str, name: str) -> str:
    """A fresh, empty database on the benchmark cluster; returns its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def settings_for(url: str, bootstrap: str, topic: str, tmp: Path) -> Settings:
    return Settings(
        data_dir=tmp,
        database_url=url,
        pool_size=4,
        kafka_bootstrap_servers=bootstrap,
        kafka_topic=topic,
    )


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update(
        CRM_DATABASE_URL=settings.database_url or "",
        CRM_DATA_DIR=str(settings.data_dir),
        CRM_POOL_SIZE=str(settings.pool_size),
        CRM_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        CRM_KAFKA_TOPIC=settings.kafka_topic,
        CRM_LOG_LEVEL="warning",
        **extra,
    )
    return env


@contextmanager
def processes(commands: list[list[str]], env: dict[str, str], logs: Path) -> Iterator[None]:
    """``crm`` children, always stopped (SIGTERM, then SIGKILL) when the block is left."""
    children = []
    for n, args in enumerate(commands):
        log = (logs / f"{args[0]}-{n}.log").open("ab")
        children.append(
            subprocess.Popen([str(CRM), *args], env=env, stdout=log, stderr=subprocess.STDOUT)
        )
    try:
        yield
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=10)


def wait(condition: Any, timeout: float, what: str, pause: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(pause)


# --- a workload ----------------------------------------------------------------------------


def context() -> EventContext:
    command_id = uuid.uuid4()
    return EventContext(
        organization_id=DEFAULT_ORGANIZATION_ID,
        actor_id="bench",
        occurred_at=datetime.now(UTC),
        command_id=command_id,
        correlation_id=command_id,
    )


def prefill(app: CrmApplication, events: int, seed: int = 1) -> list[Deal]:
    """Clients and deals moved stage to stage until the log holds about ``events`` events."""
    rng = random.Random(seed)
    clients = [
        Client(
            name=f"Client {n}",
            category="prospect",
            status="prospect",
            details={},
            context=context(),
        )
        for n in range(100)
    ]
    app.save(*clients)
    deals = [
        Deal.open(
            name=f"Deal {n}",
            client_id=clients[n % len(clients)].id,
            value=Decimal(rng.randrange(100, 1_000_000)) / 100,
            currency="EUR",
            expected_close_date=date(2027, 1 + n % 12, 1),
            owner_id=rng.choice(["maria", "jon", None]),
            context=context(),
        )
        for n in range(max(events // 20, 50))
    ]
    for start in range(0, len(deals), 250):
        app.save(*deals[start : start + 250])
    while app.head_position() < events:
        for start in range(0, len(deals), 250):
            chunk = deals[start : start + 250]
            for deal in chunk:
                stage = rng.choice([s for s in OPEN_STAGES if s != deal.stage])
                deal.change_stage(stage, None, context())
            app.save(*chunk)
    return deals


# --- 1. relay ------------------------------------------------------------------------------


@dataclass
class RelayFigures:
    events: int
    relay_rate: float
    raw_batched_rate: float
    raw_stream_rate: float


def bench_relay(settings: Settings, app: CrmApplication) -> RelayFigures:
    head = app.head_position()
    relay = build_relay(settings)
    try:
        ensure_topic(settings.kafka_bootstrap_servers, settings.kafka_topic)
        relay.publish_batch()  # connect, metadata: not part of the rate
        started = time.perf_counter()
        relay.catch_up()
        relay_seconds = time.perf_counter() - started
        published = head - relay.events.recorder.select_notifications(1, 1)[0].id
    finally:
        relay.close()
        relay.events.close()
        relay.store.close()

    encoder = EnvelopeEncoder(app.mapper)
    notifications = app.recorder.select_notifications(start=1, limit=head)
    messages = [(encoder.key(n), encoder.encode(n)) for n in notifications]
    rates = []
    for per_batch in (settings.relay_batch_size, len(messages)):
        topic = f"{settings.kafka_topic}.raw-{per_batch}"
        ensure_topic(settings.kafka_bootstrap_servers, topic)
        producer = new_producer(settings.kafka_bootstrap_servers, client_id="bench-raw")
        producer.send(topic, key=b"warm-up", value=b"{}")
        producer.flush()
        started = time.perf_counter()
        for start in range(0, len(messages), per_batch):
            futures = [
                producer.send(topic, key=k, value=v) for k, v in messages[start : start + per_batch]
            ]
            producer.flush()
            for future in futures:
                future.get(timeout=30)
        rates.append(len(messages) / (time.perf_counter() - started))
        producer.close(timeout=10)
    return RelayFigures(published, published / relay_seconds, rates[0], rates[1])


# --- 2. projection throughput --------------------------------------------------------------


def messages_applied(url: str, group: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            row = conn.execute(
                f"SELECT coalesce(sum(next_offset), 0) FROM {OFFSETS_TABLE} WHERE group_id = %s",
                (group,),
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row[0]) if row else 0


def bench_kafka_workers(
    admin_url: str, settings: Settings, workers: int, total: int, logs: Path
) -> tuple[float, float]:
    """(events/s from the first applied batch to the last, seconds from start to the end)."""
    url = database(admin_url, f"crm_bench_kafka_rm_{workers}")
    rm_settings = settings.model_copy(update={"database_url": url})
    group = f"bench-{workers}-{uuid.uuid4().hex[:6]}"
    env = environment(rm_settings, CRM_PROJECTION_BATCH_SIZE="1000")
    started = time.perf_counter()
    args = ["project", "--source", "kafka", "--group", group]
    with processes([args] * workers, env, logs):
        wait(lambda: messages_applied(url, group) > 0, 120, "a first batch", pause=0.005)
        first = time.perf_counter()
        first_count = messages_applied(url, group)
        wait(lambda: messages_applied(url, group) >= total, 600, "every message", pause=0.02)
        done = time.perf_counter()
    return (total - first_count) / (done - first), done - started


def bench_store_worker(admin_url: str, app: CrmApplication, tmp: Path) -> float:
    url = database(admin_url, "crm_bench_store_rm")
    store = ReadModelStore(Settings(data_dir=tmp, database_url=url, pool_size=4).location())
    try:
        worker = ProjectionWorker(app, store, batch_size=1000)
        started = time.perf_counter()
        seen = worker.catch_up()
        return seen / (time.perf_counter() - started)
    finally:
        store.close()


# --- 3. end-to-end lag ---------------------------------------------------------------------


@dataclass
class LagFigures:
    commands: int
    rate: float
    row_p50_ms: float
    row_p99_ms: float
    row_max_ms: float
    read_p50_ms: float
    read_p99_ms: float


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def bench_lag(
    admin_url: str, bootstrap: str, rate: float, seconds: float, tmp: Path, logs: Path
) -> LagFigures:
    url = database(admin_url, "crm_bench_kafka_lag")
    settings = settings_for(url, bootstrap, f"crm.events.bench-lag-{uuid.uuid4().hex[:6]}", tmp)
    app = CrmApplication(settings.location())
    deals = prefill(app, 2_000, seed=7)
    ensure_topic(bootstrap, settings.kafka_topic)
    env = environment(settings, CRM_PROJECTION_BATCH_SIZE="1000", CRM_RELAY_BATCH_SIZE="1000")
    pending: dict[str, tuple[int, int, float]] = {}  # deal id → (version, position, accepted)
    row_lags: list[float] = []
    read_lags: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def observe() -> None:
        waiting_read: list[tuple[int, float]] = []
        with psycopg.connect(url, autocommit=True) as conn:
            while not (done.is_set() and not pending and not waiting_read):
                with lock:
                    snapshot = dict(pending)
                if snapshot:
                    rows = conn.execute(
                        "SELECT id, version FROM rm_deals WHERE id = ANY(%s)", (list(snapshot),)
                    ).fetchall()
                    now = time.perf_counter()
                    with lock:
                        for deal_id, version in rows:
                            entry = pending.get(deal_id)
                            if entry is not None and version >= entry[0]:
                                row_lags.append(now - entry[2])
                                waiting_read.append((entry[1], entry[2]))
                                del pending[deal_id]
                if waiting_read:
                    row = conn.execute(
                        "SELECT notification_id FROM read_model_tracking "
                        "WHERE application_name = %s",
                        (TRACKING_NAME,),
                    ).fetchone()
                    read = int(row[0]) if row else 0
                    now = time.perf_counter()
                    still = []
                    for position, accepted in waiting_read:
                        if position <= read:
                            read_lags.append(now - accepted)
                        else:
                            still.append((position, accepted))
                    waiting_read = still
                time.sleep(0.002)

    try:
        with processes(
            [["relay"], ["project", "--source", "kafka", "--group", "bench-lag"]], env, logs
        ):
            head = app.head_position()
            store = ReadModelStore(settings.location())
            try:
                wait(lambda: store.position(TRACKING_NAME) >= head, 180, "the prefill projected")
            finally:
                store.close()
            observer = threading.Thread(target=observe, daemon=True)
            observer.start()
            rng = random.Random(8)
            meta = CommandMeta(organization_id=DEFAULT_ORGANIZATION_ID, actor_id="bench")
            reserved: set[str] = set()

            def command(deal: Deal, value: Decimal) -> None:
                try:
                    accepted = app.change_deal_value(
                        deal.id, models.ChangeDealValue(value=value, currency="EUR"), meta
                    )
                    at = time.perf_counter()
                    with lock:
                        pending[str(deal.id)] = (accepted.version, accepted.position, at)
                finally:
                    with lock:
                        reserved.discard(str(deal.id))

            sent = 0
            started = time.perf_counter()
            # API processes serve commands concurrently: so do 8 threads here.
            with ThreadPoolExecutor(max_workers=8) as pool:
                while (elapsed := time.perf_counter() - started) < seconds:
                    due = started + sent / rate
                    if due > time.perf_counter():
                        time.sleep(due - time.perf_counter())
                    deal = rng.choice(deals)
                    with lock:
                        # one command in flight per deal: its row version says when it landed
                        if str(deal.id) in pending or str(deal.id) in reserved:
                            continue
                        reserved.add(str(deal.id))
                    value = Decimal(rng.randrange(100, 1_000_000)) / 100
                    pool.submit(command, deal, value)
                    sent += 1
            achieved = sent / elapsed
            done.set()
            observer.join(timeout=60)
    finally:
        app.close()
    ms = [lag * 1000 for lag in row_lags]
    read_ms = [lag * 1000 for lag in read_lags]
    return LagFigures(
        commands=sent,
        rate=achieved,
        row_p50_ms=percentile(ms, 50),
        row_p99_ms=percentile(ms, 99),
        row_max_ms=max(ms),
        read_p50_ms=percentile(read_ms, 50) if len(read_ms) > 1 else float("nan"),
        read_p99_ms=percentile(read_ms, 99) if len(read_ms) > 1 else float("nan"),
    )


# --- the run -------------------------------------------------------------------------------


def wait_quiet(limit: float) -> None:
    """Wait up to ``limit`` seconds for the machine to be idle (others' benchmarks, tests)."""
    deadline = time.monotonic() + limit
    while os.getloadavg()[0] >= 1.0 and time.monotonic() < deadline:
        print(f"waiting for a quiet machine (load {os.getloadavg()[0]:.1f})…", flush=True)
        time.sleep(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000, help="events in the store")
    parser.add_argument("--rate", type=float, default=200.0, help="commands/s for the lag")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the lag run")
    parser.add_argument("--only", choices=["relay", "projection", "lag"], action="append")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait (at most this long) for a 1-minute load average below 1",
    )
    options = parser.parse_args()
    wait_quiet(options.wait_quiet)
    admin_url = os.environ["CRM_TEST_POSTGRES_URL"]
    bootstrap = os.environ["CRM_TEST_KAFKA_BOOTSTRAP"]
    only = set(options.only or ["relay", "projection", "lag"])
    run = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"crm-kafka-bench-{run}"
    logs = tmp / "logs"
    logs.mkdir(parents=True)
    load = os.getloadavg()[0]
    lines = [
        f"# Event stream benchmark, {run} (PostgreSQL + Kafka on loopback, {os.cpu_count()} "
        f"cores, 1-minute load {load:.1f} at the start)",
        "",
        "| figure | value | baseline (same run) | ratio |",
        "|---|---:|---:|---:|",
    ]

    def row(figure: str, value: str, baseline: str = "", ratio: str = "") -> None:
        lines.append(f"| {figure} | {value} | {baseline} | {ratio} |")
        print(lines[-1], flush=True)

    if only & {"relay", "projection"}:
        url = database(admin_url, "crm_bench_kafka")
        settings = settings_for(url, bootstrap, f"crm.events.bench-{run}", tmp)
        app = CrmApplication(settings.location())
        print(f"prefilling about {options.events:,} events…", flush=True)
        prefill(app, options.events)
        head = app.head_position()
        relay = bench_relay(settings, app)
        if "relay" in only:
            row(
                f"relay, store → Kafka, {relay.events:,} events, batches of "
                f"{settings.relay_batch_size}",
                f"{relay.relay_rate:,.0f} events/s",
                f"raw kafka-python, same messages and batches: {relay.raw_batched_rate:,.0f}/s",
                f"{relay.relay_rate / relay.raw_batched_rate:.2f}",
            )
            row(
                "raw kafka-python, same messages, one flush",
                f"{relay.raw_stream_rate:,.0f} messages/s",
            )
        if "projection" in only:
            store_rate = bench_store_worker(admin_url, app, tmp)
            for workers in (1, 2):
                rate, total_seconds = bench_kafka_workers(admin_url, settings, workers, head, logs)
                row(
                    f"projection from Kafka, {workers} worker{'s' * (workers > 1)}, "
                    f"{head:,} events",
                    f"{rate:,.0f} events/s ({total_seconds:.1f} s with start-up)",
                    f"store-fed worker: {store_rate:,.0f}/s",
                    f"{rate / store_rate:.2f}",
                )
        app.close()
    if "lag" in only:
        lag = bench_lag(admin_url, bootstrap, options.rate, options.seconds, tmp, logs)
        row(
            f"end-to-end lag, command → read-model row via Kafka, {lag.commands:,} commands "
            f"at {lag.rate:,.0f}/s",
            f"p50 {lag.row_p50_ms:.0f} ms, p99 {lag.row_p99_ms:.0f} ms, "
            f"max {lag.row_max_ms:.0f} ms",
        )
        row(
            "… → read position covers it (min_position reads)",
            f"p50 {lag.read_p50_ms:.0f} ms, p99 {lag.read_p99_ms:.0f} ms",
        )
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"kafka-{run}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
