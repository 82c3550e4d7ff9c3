"""A projection worker killed mid-catch-up, again and again, still ends with exact read models.

Given a store of more than 20,000 events and no projection yet, ``crm project`` runs as a real
process and is SIGKILLed while it is catching up, several times; restarted, it finishes. Its
read models must equal a clean rebuild from the same log, row by row, and the facts the
generator kept on its own side: every event accounted once, no deal counted twice.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from aggregates.client import Client
from aggregates.contact import Contact
from aggregates.context import EventContext
from aggregates.deal import Deal, DealStatus
from aggregates.pipeline import DEFAULT_PIPELINE
from commands.service import CrmApplication
from crm.identity import DEFAULT_ORGANIZATION_ID
from crm.settings import Settings
from event_store.read_model_store import ReadModelStore
from projections.deals import PIPELINE_VALUE_KEY, PIPELINE_VALUE_TABLE
from projections.units import money_e4
from projections.worker import TRACKING_NAME, ProjectionWorker
from tests.integration.processes import crm_environment, running, wait_until

pytestmark = pytest.mark.slow

CLIENTS = 200
CONTACTS = 400
DEALS = 2_000
ROUNDS = 10  # after opening, each round gives every deal one more event (archived ones excepted)
MIN_EVENTS = 20_000
SAVE_CHUNK = 250  # aggregates per app.save(...): one transaction each
BATCH_SIZE = 500
KILLS = 4
MAX_KILL_ATTEMPTS = 12
OPEN_STAGES = DEFAULT_PIPELINE.open_stage_ids()
OWNERS = ("maria", "jon", "ana", None)
CLOSE_DATES = tuple(date(2027, month, 1) for month in (1, 4, 7, 10))
TABLE_KEYS = {
    "rm_clients": ("id",),
    "rm_contacts": ("id",),
    "rm_deals": ("id",),
    PIPELINE_VALUE_TABLE: PIPELINE_VALUE_KEY,
}


def context() -> EventContext:
    command_id = uuid4()
    return EventContext(
        organization_id=DEFAULT_ORGANIZATION_ID,
        actor_id="load-generator",
        occurred_at=datetime.now(UTC),
        command_id=command_id,
        correlation_id=command_id,
    )


@dataclass
class DealFacts:
    """What the generator itself knows of one deal, apart from any read model."""

    deal: Deal
    probability: int

    def expected_row(self) -> dict[str, Any]:
        deal = self.deal
        return {
            "stage": deal.stage,
            "status": deal.status.value,
            "value_e4": money_e4(deal.value),
            "probability": self.probability,
            "owner_id": deal.owner_id,
            "archived": int(deal.archived),
            "version": deal.version,
        }


@dataclass
class Workload:
    clients: list[Client]
    contacts: list[Contact]
    deals: dict[str, DealFacts]

    @property
    def events(self) -> int:
        records = [*self.clients, *self.contacts, *(f.deal for f in self.deals.values())]
        return sum(record.version for record in records)

    def open_pipeline(self) -> dict[str, tuple[int, int, int]]:
        """Per open stage: deals, Σ value_e4 and Σ value_e4 × probability of open deals."""
        totals: dict[str, tuple[int, int, int]] = {}
        for facts in self.deals.values():
            deal = facts.deal
            if deal.status is not DealStatus.OPEN or deal.archived:
                continue
            count, value, weighted = totals.get(deal.stage, (0, 0, 0))
            value_e4 = money_e4(deal.value)
            totals[deal.stage] = (
                count + 1,
                value + value_e4,
                weighted + value_e4 * facts.probability,
            )
        return totals


def save_in_chunks(app: CrmApplication, records: list[Any]) -> None:
    for start in range(0, len(records), SAVE_CHUNK):
        app.save(*records[start : start + SAVE_CHUNK])


def step(facts: DealFacts, rng: random.Random) -> bool:
    """One more event for the deal, chosen at random among what its state allows."""
    deal = facts.deal
    if deal.archived:
        return False
    if not deal.is_open:
        roll = rng.random()
        if roll < 0.5:
            deal.reopen(rng.choice(OPEN_STAGES), context())
            facts.probability = DEFAULT_PIPELINE.stage(deal.stage).probability  # type: ignore[union-attr]
        elif roll < 0.55:
            deal.archive(context())
        else:
            deal.change_details({"notes": f"note {rng.randrange(10**6)}"}, context())
        return True
    roll = rng.random()
    if roll < 0.45:
        to_stage = rng.choice([s for s in OPEN_STAGES if s != deal.stage])
        deal.change_stage(to_stage, None, context())
        facts.probability = DEFAULT_PIPELINE.stage(to_stage).probability  # type: ignore[union-attr]
    elif roll < 0.65:
        deal.change_value(Decimal(rng.randrange(100, 1_000_000)) / 100, "EUR", context())
    elif roll < 0.75:
        facts.probability = rng.randrange(0, 101)
        deal.change_probability(facts.probability, context())
    elif roll < 0.83:
        deal.win(context())
        facts.probability = 100
    elif roll < 0.90:
        deal.lose("budget", rng.choice(["Globex", None]), context())
        facts.probability = 0
    elif roll < 0.95:
        deal.reassign(rng.choice([o for o in OWNERS if o != deal.owner_id]), context())
    elif roll < 0.98:
        deal.change_expected_close_date(rng.choice(CLOSE_DATES), context())
    else:
        deal.archive(context())
    return True


def generate(app: CrmApplication, rng: random.Random) -> Workload:
    """Clients, linked contacts and deals moved round by round, interleaved in the log."""
    clients = [
        Client(
            name=f"Client {n}",
            category="prospect",
            status="prospect",
            details={},
            context=context(),
        )
        for n in range(CLIENTS)
    ]
    save_in_chunks(app, clients)
    contacts = []
    for n in range(CONTACTS):
        contact = Contact(
            first_name="Ana",
            last_name=f"Ruiz {n}",
            email=f"ana.{n}@example.com",
            details={},
            context=context(),
        )
        contact.link_to(clients[n % CLIENTS].id, context())
        contacts.append(contact)
    save_in_chunks(app, contacts)
    deals: dict[str, DealFacts] = {}
    for n in range(DEALS):
        deal = Deal.open(
            name=f"Deal {n}",
            client_id=clients[n % CLIENTS].id,
            value=Decimal(rng.randrange(100, 1_000_000)) / 100,
            currency="EUR",
            expected_close_date=rng.choice(CLOSE_DATES),
            owner_id=rng.choice(OWNERS),
            context=context(),
        )
        deals[str(deal.id)] = DealFacts(deal, DEFAULT_PIPELINE.first_open_stage.probability)
    save_in_chunks(app, [facts.deal for facts in deals.values()])
    for _ in range(ROUNDS):
        moved = [facts.deal for facts in deals.values() if step(facts, rng)]
        rng.shuffle(moved)
        save_in_chunks(app, moved)
    return Workload(clients, contacts, deals)


def dump(store: ReadModelStore) -> dict[str, list[dict[str, Any]]]:
    """Every read-model table, every row, sorted by primary key."""
    tables = {}
    with store.transaction(commit=False) as cursor:
        for table, key in TABLE_KEYS.items():
            cursor.execute(f"SELECT * FROM {table} ORDER BY {', '.join(key)}")
            tables[table] = [dict(row) for row in cursor.fetchall()]
    return tables


class WriteProbe:
    """Whether some other connection has a write transaction open on the read-model store."""

    def __init__(self, settings: Settings) -> None:
        self._sqlite: sqlite3.Connection | None = None
        self._postgres: psycopg.Connection[Any] | None = None
        if settings.database_url is None:
            path = settings.location().read_models_path
            self._sqlite = sqlite3.connect(path, timeout=0, isolation_level=None)
        else:
            self._postgres = psycopg.connect(settings.database_url, autocommit=True)

    def write_in_flight(self) -> bool:
        if self._postgres is not None:
            row = self._postgres.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
            ).fetchone()
            return row is not None and row[0] > 0
        assert self._sqlite is not None
        try:  # the write lock is free unless a writer is between its first write and commit
            self._sqlite.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return True
        self._sqlite.execute("ROLLBACK")
        return False

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._postgres is not None:
            self._postgres.close()


@pytest.fixture
def crash_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"projection_batch_size": BATCH_SIZE})


@pytest.fixture
def events(crash_settings: Settings) -> Iterator[CrmApplication]:
    app = CrmApplication(crash_settings.location())
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def write_probe(crash_settings: Settings, read_store: ReadModelStore) -> Iterator[WriteProbe]:
    probe = WriteProbe(crash_settings)
    try:
        yield probe
    finally:
        probe.close()


@pytest.fixture
def read_store(crash_settings: Settings) -> Iterator[ReadModelStore]:
    store = ReadModelStore(crash_settings.location())
    try:
        yield store
    finally:
        store.close()


def test_given_20000_events_when_the_worker_is_killed_mid_batch_then_read_models_are_exact(
    crash_settings: Settings,
    events: CrmApplication,
    read_store: ReadModelStore,
    write_probe: WriteProbe,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    rng = random.Random(20_000)
    workload = generate(events, rng)
    head = events.head_position()
    assert head == workload.events >= MIN_EVENTS, "the log lost or gained events"
    generated = time.monotonic()
    env = crm_environment(crash_settings, CRM_PROJECTION_BATCH_SIZE=str(BATCH_SIZE))
    log_path = tmp_path / "crm-project.log"

    killed_at = kill_mid_batch(env, log_path, read_store, write_probe, head, rng)
    with running(["project"], env, log_path) as worker:
        wait_until(lambda: position(read_store) == head, 60, f"position {head}", worker, 0.05)
        assert worker.stop() == 0, worker.output()
    assert "Traceback" not in worker.output(last_chars=10**7), worker.output()
    caught_up = time.monotonic()
    after_crashes = dump(read_store)
    rebuilder = ProjectionWorker(events, read_store, batch_size=BATCH_SIZE)
    rebuilder.reset()
    assert dump(read_store)["rm_deals"] == []
    rebuilder.catch_up()
    rebuilt = dump(read_store)

    for table in TABLE_KEYS:
        assert after_crashes[table] == rebuilt[table], f"{table} differs from a clean rebuild"
    assert_matches_workload(after_crashes, workload, head)
    print(
        f"\n{read_store.dialect}: {head} events generated in {generated - started:.1f} s; "
        f"killed mid-batch at {killed_at}; caught up {caught_up - generated:.1f} s later; "
        f"total {time.monotonic() - started:.1f} s"
    )


def position(store: ReadModelStore) -> int:
    return store.position(TRACKING_NAME)


def kill_mid_batch(
    env: dict[str, str],
    log_path: Path,
    store: ReadModelStore,
    probe: WriteProbe,
    head: int,
    rng: random.Random,
) -> list[int]:
    """Restart ``crm project`` and SIGKILL it inside a batch's transaction, until that has
    happened KILLS times; return the positions it was killed at."""
    killed_at: list[int] = []
    for _ in range(MAX_KILL_ATTEMPTS):
        if len(killed_at) == KILLS:
            break
        resume_past = position(store) + BATCH_SIZE * rng.randint(1, 3)
        writing_from, after = kill_while_writing(env, log_path, store, probe, resume_past)
        assert after < head, f"the worker finished ({after}) before it could be killed"
        # The log's ids run 1..head without gaps, so a whole number of batches is tracked.
        assert after % BATCH_SIZE == 0, f"position {after} is not at a whole batch"
        if after == writing_from:  # the open batch died with it (else it had just committed)
            killed_at.append(after)
    assert len(killed_at) == KILLS, f"only {killed_at} kills landed inside a batch"
    return killed_at


def kill_while_writing(
    env: dict[str, str], log_path: Path, store: ReadModelStore, probe: WriteProbe, past: int
) -> tuple[int, int]:
    """Once the worker has tracked ``past``, SIGKILL it the moment a write transaction is
    open; return the position tracked just before it was seen writing, and after the kill."""
    seen: list[int] = []

    def writing() -> bool:
        seen.append(position(store))
        return probe.write_in_flight()

    with running(["project"], env, log_path) as worker:
        wait_until(lambda: position(store) >= past, 30, f"position {past}", worker)
        wait_until(writing, 30, "a batch's write transaction", worker, pause=0.001)
        worker.kill()
    return seen[-1], position(store)


def assert_matches_workload(
    tables: dict[str, list[dict[str, Any]]], workload: Workload, head: int
) -> None:
    """The facts the generator kept itself: each event once, each open deal once per stage."""
    assert len(tables["rm_clients"]) == CLIENTS
    assert len(tables["rm_contacts"]) == CONTACTS
    assert len(tables["rm_deals"]) == DEALS
    versions = sum(
        row["version"]
        for table in TABLE_KEYS
        if table != PIPELINE_VALUE_TABLE
        for row in tables[table]
    )
    assert versions == head, "the rows' versions do not add up to the events in the log"
    for row in tables["rm_deals"]:
        expected = workload.deals[row["id"]].expected_row()
        assert {column: row[column] for column in expected} == expected, row["id"]

    pipeline: Counter[str] = Counter()
    value: Counter[str] = Counter()
    weighted: Counter[str] = Counter()
    for row in tables[PIPELINE_VALUE_TABLE]:
        pipeline[row["stage"]] += row["deals"]
        value[row["stage"]] += row["value_e4"]
        weighted[row["stage"]] += row["weighted_e6"]
    summary = {stage: (pipeline[stage], value[stage], weighted[stage]) for stage in pipeline}
    assert summary == workload.open_pipeline()
