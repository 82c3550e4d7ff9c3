"""Small builders for the unit tests of the aggregates: contexts on a business clock, replay."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from aggregates.context import EventContext

A = TypeVar("A", bound=Aggregate)

ORG = UUID("00000000-0000-4000-8000-00000000000a")
OTHER_ORG = UUID("00000000-0000-4000-8000-00000000000b")
ACTOR = "user-ana"

# Business time of the first event of every record in these tests: in the past on purpose,
# so every test is also a backfill (the recorded time is "now").
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    """The business time ``n`` days after :data:`T0` (negative: before it)."""
    return T0 + timedelta(days=n)


def at(occurred_at: datetime, organization_id: UUID = ORG) -> EventContext:
    """The context of one command that happened at ``occurred_at``."""
    return EventContext(
        organization_id=organization_id,
        actor_id=ACTOR,
        occurred_at=occurred_at,
        command_id=uuid4(),
        correlation_id=uuid4(),
    )


def on_day(n: int) -> EventContext:
    return at(day(n))


def recorded(aggregate: A) -> A:
    """The aggregate as if its pending events were saved: the "given" of a test."""
    aggregate.collect_events()
    return aggregate


def only_event(aggregate: Aggregate) -> Any:
    """The one event the "when" of a test emitted."""
    events = aggregate.collect_events()
    assert len(events) == 1, f"expected one event, got {[type(e).__name__ for e in events]}"
    return events[0]


def replayed(aggregate_type: type[A], events: Sequence[Any]) -> A:
    """Reconstruct an aggregate from its events, as a repository would."""
    copy: Aggregate | None = None
    for domain_event in events:
        copy = domain_event.mutate(copy)
    assert isinstance(copy, aggregate_type)
    return copy
