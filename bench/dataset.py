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


def _chunks(items: list[Client], size: int) -> Iterator[list[Client]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
