"""Bounded, concurrent command loads: over HTTP, through the application service, raw saves.

Every load runs ``workers`` threads from a common start for ``duration`` seconds (and at most
``max_ops`` operations in all), each thread walking deals through their life: open → qualified →
proposal → won or lost. Latencies are per operation, measured where the caller sees them.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from uuid import UUID, uuid4

from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder
from harness import KeepAliveClient, Latency

from aggregates.client import Client
from aggregates.context import EventContext
from commands import models
from commands.service import CommandMeta, CrmApplication
from crm.identity import DEFAULT_ADMIN_ID, DEFAULT_ORGANIZATION_ID
from event_store.location import StoreLocation
from event_store.transcodings import register_crm_transcodings

OWNERS = tuple(f"owner-{n:02d}" for n in range(1, 11))
CURRENCIES = ("EUR", "USD", "GBP")


@dataclass
class LoadResult:
    seconds: float = 0.0
    ok: int = 0
    failed: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    first_error: str | None = None

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def latency(self) -> Latency:
        return Latency.of(self.latencies)

    def mix(self) -> str:
        total = sum(self.by_kind.values()) or 1
        return " ".join(f"{k} {100 * v / total:.0f}%" for k, v in sorted(self.by_kind.items()))


class _Worker(threading.Thread):
    def __init__(self, lifecycle: Callable[[_Worker], None], rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.lifecycle = lifecycle
        self.rng = rng
        self.deadline = 0.0
        self.budget = 0
        self.start_gate: threading.Barrier | None = None
        self.result = LoadResult()

    def timed(self, kind: str, call: Callable[[], object]) -> object | None:
        """Run one operation, record it; None when it failed."""
        started = time.perf_counter()
        try:
            value = call()
        except Exception as error:  # a failed command counts, the load goes on
            self.result.failed += 1
            self.result.first_error = self.result.first_error or f"{kind}: {error!r}"[:300]
            return None
        self.result.latencies.append(time.perf_counter() - started)
        self.result.ok += 1
        self.result.by_kind[kind] += 1
        return value

    @property
    def running(self) -> bool:
        done = self.result.ok + self.result.failed
        return time.monotonic() < self.deadline and done < self.budget

    def run(self) -> None:
        assert self.start_gate is not None
        self.start_gate.wait()
        while self.running:
            self.lifecycle(self)


def run_load(
    lifecycle: Callable[[_Worker], None],
    *,
    workers: int,
    duration: float,
    max_ops: int,
    seed: int = 7,
) -> LoadResult:
    threads = [_Worker(lifecycle, random.Random(seed + n)) for n in range(workers)]
    gate = threading.Barrier(workers + 1)
    for thread in threads:
        thread.start_gate = gate
        thread.budget = max(1, max_ops // workers)
        thread.start()
    deadline = time.monotonic() + duration
    for thread in threads:
        thread.deadline = deadline
    started = time.perf_counter()
    gate.wait()
    for thread in threads:
        thread.join(duration + 120)
    total = LoadResult(seconds=time.perf_counter() - started)
    for thread in threads:
        total.ok += thread.result.ok
        total.failed += thread.result.failed
        total.by_kind.update(thread.result.by_kind)
        total.latencies.extend(thread.result.latencies)
        total.first_error = total.first_error or thread.result.first_error
    return total


def _deal_fields(rng: random.Random, client_id: str) -> dict[str, object]:
    return {
        "name": f"Deal {rng.randrange(10**6):06d}",
        "client_id": client_id,
        "value": f"{rng.randrange(1_000, 200_000)}.00",
        "currency": rng.choice(CURRENCIES),
        "expected_close_date": date(2027, rng.randrange(1, 13), rng.randrange(1, 29)).isoformat(),
        "owner_id": rng.choice(OWNERS),
    }


# --- over HTTP -------------------------------------------------------------------------------


def create_clients_http(base_url: str, count: int, headers: Mapping[str, str]) -> list[str]:
    http = KeepAliveClient(base_url, headers)
    try:
        return [
            http.json("POST", "/clients", {"name": f"Bench client {n}"})["id"] for n in range(count)
        ]
    finally:
        http.close()


def http_lifecycle(
    base_url: str, client_ids: Sequence[str], headers: Mapping[str, str]
) -> Callable[[_Worker], None]:
    local = threading.local()

    def post(path: str, body: dict[str, object] | None = None) -> dict[str, object]:
        http: KeepAliveClient = local.http
        answer: dict[str, object] = http.json("POST", path, body)
        return answer

    def lifecycle(worker: _Worker) -> None:
        if not hasattr(local, "http"):
            local.http = KeepAliveClient(base_url, headers)
        rng = worker.rng
        body = _deal_fields(rng, rng.choice(client_ids))
        opened = worker.timed("open", lambda: post("/deals", body))
        if opened is None:
            return
        deal = f"/deals/{opened['id']}"  # type: ignore[index]
        for stage in ("qualified", "proposal"):
            move = functools.partial(post, f"{deal}/stage", {"stage": stage})
            if not worker.running or worker.timed("stage", move) is None:
                return
        if not worker.running:
            return
        if rng.random() < 0.5:
            worker.timed("win", lambda: post(f"{deal}/win"))
        else:
            worker.timed("lose", lambda: post(f"{deal}/lose", {"reason": "price"}))

    return lifecycle


# --- through the application service, in this process ----------------------------------------


def _meta() -> CommandMeta:
    return CommandMeta(organization_id=DEFAULT_ORGANIZATION_ID, actor_id=DEFAULT_ADMIN_ID)


def create_clients_service(app: CrmApplication, count: int) -> list[str]:
    return [
        str(app.register_client(models.RegisterClient(name=f"Bench client {n}"), _meta()).record_id)
        for n in range(count)
    ]


def service_lifecycle(app: CrmApplication, client_ids: Sequence[str]) -> Callable[[_Worker], None]:
    """The same walk as over HTTP, with the command models and the application service only."""

    def lifecycle(worker: _Worker) -> None:
        rng = worker.rng
        cmd = models.OpenDeal.model_validate(_deal_fields(rng, rng.choice(client_ids)))
        opened = worker.timed("open", lambda: app.open_deal(cmd, _meta()))
        if opened is None:
            return
        deal_id: UUID = opened.record_id  # type: ignore[attr-defined]
        for stage in ("qualified", "proposal"):
            to_stage = models.ChangeStage(stage=stage)
            move = functools.partial(app.change_stage, deal_id, to_stage, _meta())
            if not worker.running or worker.timed("stage", move) is None:
                return
        if not worker.running:
            return
        if rng.random() < 0.5:
            worker.timed("win", lambda: app.win_deal(deal_id, _meta()))
        else:
            lose = models.LoseDeal(reason="price")
            worker.timed("lose", lambda: app.lose_deal(deal_id, lose, _meta()))

    return lifecycle


class LibraryApplication(Application[UUID]):
    """The library's own ``Application`` on the same store: no group commit, nothing of ours
    but the transcodings our events need."""

    name = "crm"

    def __init__(self, location: StoreLocation) -> None:
        super().__init__(env=location.event_store_env())

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_crm_transcodings(transcoder)


def raw_save_lifecycle(app: Application[UUID]) -> Callable[[_Worker], None]:
    """``save`` of one new aggregate (one event) per call, nothing else."""

    def lifecycle(worker: _Worker) -> None:
        command_id = uuid4()
        context = EventContext(
            DEFAULT_ORGANIZATION_ID, DEFAULT_ADMIN_ID, datetime.now(UTC), command_id, command_id
        )
        client = Client(
            name="Raw", category="prospect", status="prospect", details={}, context=context
        )
        worker.timed("save", lambda: app.save(client))

    return lifecycle
