"""A realistic book of deals, recorded fast in-process: aggregates built directly, many per save.

~10 owners, three currencies, expected close dates spread over a year, ~40 % of deals won or
lost with open → close durations spread over 1–200 days, 0–3 stage changes each — all with
back-dated business times (``occurred_at``) so the analytics have real work to do. Seeded, so
two runs record the same book.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

from aggregates.client import Client
from aggregates.context import EventContext
from aggregates.deal import Deal
from aggregates.exchange_rates import ExchangeRates
from aggregates.pipeline import DEFAULT_PIPELINE, Pipeline, PipelineDefinition, Stage, StageKind
from commands.service import CrmApplication
from crm.identity import DEFAULT_ORGANIZATION_ID

OWNERS = tuple(f"owner-{n:02d}" for n in range(1, 11))
CURRENCIES = (("EUR", 0.6), ("USD", 0.3), ("GBP", 0.1))
OPEN_STAGES = ("lead", "qualified", "proposal", "negotiation")
LOST_REASONS = ("price", "timing", "no budget", "went with a competitor", "no decision")
COMPETITORS = ("Rivalsoft", "Globex", "Initech", None)
DEALS_PER_CLIENT = 20
HISTORY_DAYS = 420
CLOSED_SHARE = 0.4
WON_SHARE_OF_CLOSED = 0.45


@dataclass(frozen=True)
class Recorded:
    clients: int
    deals: int
    events: int
    saves: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds


class DealBook:
    """Builds clients and deals with their histories, ``per_save`` aggregates a save."""

    def __init__(self, app: CrmApplication, *, seed: int = 2024, now: datetime | None = None):
        self.app = app
        self.rng = random.Random(seed)
        self.now = (now or datetime.now(UTC)).replace(microsecond=0)

    def context(self, actor: str, at: datetime) -> EventContext:
        command_id = uuid4()
        return EventContext(
            organization_id=DEFAULT_ORGANIZATION_ID,
            actor_id=actor,
            occurred_at=at,
            command_id=command_id,
            correlation_id=command_id,
        )

    def record(self, deals: int, *, per_save: int = 100) -> Recorded:
        started = time.perf_counter()
        events = saves = 0
        clients = [self._client(n) for n in range(max(1, deals // DEALS_PER_CLIENT))]
        for chunk in _chunks(clients, 500):
            events += sum(len(c.pending_events) for c in chunk)
            self.app.save(*chunk)
            saves += 1
        client_ids = [c.id for c in clients]
        batch: list[Deal] = []
        for n in range(deals):
            batch.append(self._deal(n, self.rng.choice(client_ids)))
            if len(batch) == per_save or n == deals - 1:
                events += sum(len(d.pending_events) for d in batch)
                self.app.save(*batch)
                saves += 1
                batch = []
        return Recorded(len(clients), deals, events, saves, time.perf_counter() - started)

    def _client(self, n: int) -> Client:
        at = self.now - timedelta(days=HISTORY_DAYS + 30, minutes=self.rng.randrange(60 * 24 * 30))
        return Client(
            name=f"Client {n:06d}",
            category="active_client" if self.rng.random() < 0.7 else "prospect",
            status="active",
            details={},
            context=self.context("admin", at),
        )

    def _deal(self, n: int, client_id: object) -> Deal:
        rng = self.rng
        owner = rng.choice(OWNERS)
        currency = rng.choices([c for c, _ in CURRENCIES], [w for _, w in CURRENCIES])[0]
        value = Decimal(round(min(rng.lognormvariate(9.5, 1.0), 5_000_000), 2)).quantize(
            Decimal("0.01")
        )
        closes = rng.random() < CLOSED_SHARE
        # Spread over 1–200 days, more short cycles than long ones.
        cycle = timedelta(days=1 + 199 * rng.random() ** 1.6, seconds=rng.randrange(86_400))
        latest_open = self.now - (cycle if closes else timedelta(hours=1))
        opened = latest_open - timedelta(
            seconds=rng.randrange(int((HISTORY_DAYS * 86_400) - cycle.total_seconds()))
            if closes
            else rng.randrange(HISTORY_DAYS * 86_400)
        )
        expected = (self.now + timedelta(days=rng.randrange(-120, 245))).date()
        deal = Deal.open(
            name=f"Deal {n:07d}",
            client_id=client_id,  # type: ignore[arg-type]
            value=value,
            currency=currency,
            expected_close_date=max(expected, date(2000, 1, 1)),
            owner_id=owner,
            source=rng.choice(("web", "referral", "outbound", "event")),
            context=self.context(owner, opened),
        )
        end = opened + cycle if closes else self.now - timedelta(minutes=1)
        steps = rng.choice((0, 1, 1, 2, 2, 3))
        moments = sorted(opened + (end - opened) * rng.random() for _ in range(steps))
        for stage, at in zip(OPEN_STAGES[1 : 1 + steps], moments, strict=False):
            deal.change_stage(stage, None, self.context(owner, at))
        if closes:
            if rng.random() < WON_SHARE_OF_CLOSED:
                deal.win(self.context(owner, end))
            else:
                reason, competitor = rng.choice(LOST_REASONS), rng.choice(COMPETITORS)
                deal.lose(reason, competitor, self.context(owner, end))
        return deal


ENTERPRISE = PipelineDefinition(
    id="enterprise",
    name="Enterprise",
    stages=(
        Stage("discovery", "Discovery", 5, StageKind.OPEN),
        Stage("solution", "Solution design", 30, StageKind.OPEN),
        Stage("legal", "Legal review", 70, StageKind.OPEN),
        Stage("won", "Won", 100, StageKind.WON),
        Stage("lost", "Lost", 0, StageKind.LOST),
    ),
)
RATE_CURRENCIES = {"USD": 0.92, "GBP": 1.17}  # to EUR, the organization's base currency


class HistoryBook(DealBook):
    """A long history: ≈ 10 events a deal over two years, for the analytics at scale.

    Deals walk forward and back through two pipelines (re-entering stages), are revalued,
    re-dated, re-weighted and reassigned, move between pipelines, are won or lost, some reopened
    and closed again, some archived; USD and GBP rates change monthly. Business times are
    back-dated and every deal's events are in order."""

    history_days = 730

    def record_until(self, events: int, *, per_save: int = 200) -> Recorded:
        """Deals (and their clients) until the log holds at least ``events`` of theirs."""
        started = time.perf_counter()
        recorded = self._setup()
        saves = 1
        clients = [self._client(n) for n in range(max(1, events // 200))]
        for chunk in _chunks(clients, 500):
            recorded += sum(len(c.pending_events) for c in chunk)
            self.app.save(*chunk)
            saves += 1
        client_ids = [c.id for c in clients]
        deals = 0
        while recorded < events:
            batch = [
                self._long_deal(deals + n, self.rng.choice(client_ids)) for n in range(per_save)
            ]
            deals += per_save
            recorded += sum(len(d.pending_events) for d in batch)
            self.app.save(*batch)
            saves += 1
        return Recorded(len(clients), deals, recorded, saves, time.perf_counter() - started)

    def _setup(self) -> int:
        """The second pipeline and two years of monthly exchange rates."""
        start = self.now - timedelta(days=self.history_days + 60)
        pipeline = Pipeline.define(
            ENTERPRISE.id, ENTERPRISE.name, ENTERPRISE.stages, self.context("admin", start)
        )
        rates = ExchangeRates(self.context("admin", start))
        month = start.date().replace(day=1)
        while month <= self.now.date():
            for currency, rate in RATE_CURRENCIES.items():
                drift = Decimal(str(round(rate * (1 + self.rng.uniform(-0.05, 0.05)), 4)))
                rates.set_rate(currency, drift, month, "EUR", self.context("admin", start))
            month = (month + timedelta(days=32)).replace(day=1)
        self.app.save(pipeline, rates)
        return len(pipeline.pending_events) + len(rates.pending_events)

    def _long_deal(self, n: int, client_id: object) -> Deal:
        rng = self.rng
        owner = rng.choice(OWNERS)
        pipeline = ENTERPRISE if rng.random() < 0.2 else DEFAULT_PIPELINE
        currency = rng.choices([c for c, _ in CURRENCIES], [w for _, w in CURRENCIES])[0]
        span = timedelta(days=1 + 299 * rng.random() ** 1.4)
        opened = self.now - timedelta(
            seconds=rng.randrange(int(self.history_days * 86_400 - span.total_seconds()))
        )
        steps = 8 + rng.randrange(9)
        moments = iter(sorted(opened + span * rng.random() for _ in range(steps)))
        deal = Deal.open(
            name=f"Deal {n:07d}",
            client_id=client_id,  # type: ignore[arg-type]
            value=self._value(),
            currency=currency,
            expected_close_date=(opened + timedelta(days=rng.randrange(30, 240))).date(),
            pipeline=pipeline,
            owner_id=owner,
            source=rng.choice(("web", "referral", "outbound", "event")),
            context=self.context(owner, opened),
        )
        for at in moments:
            self._step(deal, pipeline, self.context(deal.owner_id or owner, at))
            if deal.pipeline_id != pipeline.id:
                pipeline = ENTERPRISE if deal.pipeline_id == ENTERPRISE.id else DEFAULT_PIPELINE
        return deal

    def _step(self, deal: Deal, pipeline: PipelineDefinition, context: EventContext) -> None:
        rng = self.rng
        roll = rng.random()
        if deal.archived:
            return
        if not deal.is_open:
            if roll < 0.3:
                deal.reopen(None, context, pipeline=pipeline)
            elif roll < 0.33:
                deal.archive(context)
            return
        if roll < 0.4:
            stages = [s for s in pipeline.open_stage_ids() if s != deal.stage]
            here = pipeline.position_of(deal.stage)
            forward = [s for s in stages if pipeline.position_of(s) > here]
            target = rng.choice(forward) if forward and rng.random() < 0.75 else rng.choice(stages)
            deal.change_stage(target, None, context, pipeline=pipeline)
        elif roll < 0.52:
            deal.change_value(self._value(), deal.currency, context)
        elif roll < 0.62:
            at = context.occurred_at.date() + timedelta(days=rng.randrange(7, 120))
            deal.change_expected_close_date(at, context)
        elif roll < 0.68:
            deal.change_probability(rng.randrange(5, 95), context)
        elif roll < 0.72:
            deal.reassign(rng.choice([o for o in OWNERS if o != deal.owner_id]), context)
        elif roll < 0.74:
            other = DEFAULT_PIPELINE if pipeline is ENTERPRISE else ENTERPRISE
            deal.move_to_pipeline(other, None, None, context)
        elif roll < 0.85:
            deal.win(context, pipeline=pipeline)
        else:
            reason, competitor = rng.choice(LOST_REASONS), rng.choice(COMPETITORS)
            deal.lose(reason, competitor, context, pipeline=pipeline)

    def _value(self) -> Decimal:
        value = min(self.rng.lognormvariate(9.5, 1.0), 5_000_000)
        return Decimal(round(value, 2)).quantize(Decimal("0.01"))


def _chunks(items: list[Client], size: int) -> Iterator[list[Client]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
