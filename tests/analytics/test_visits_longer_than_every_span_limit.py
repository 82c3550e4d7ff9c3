"""Stage visits longer than every span class's limit (four years) under way at ``as_of``: a
time in stage as of then reads the finished ones from the visits' index by duration and the
ones not yet left from the open visits' index, and counts each once (projections.spans,
projections.stage_durations)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tests.analytics import history
from tests.analytics.history import DEFAULT_PIPELINE, START, Fact, definition_of, tell
from tests.analytics.oracle import Query
from tests.analytics.suite import GeneratedHistory, check

LONG_AGO = datetime(2018, 3, 5, 9, tzinfo=UTC)


def in_lead(name: str) -> dict[str, object]:
    return history.opened_in_lead("client-00", name, Decimal("2500.00"), date(2026, 6, 30))


@pytest.fixture
def long_visits(empty_store: GeneratedHistory) -> GeneratedHistory:
    """Three deals in Lead since 2018: one leaves it in mid-2024, one is lost in 2025 (and so
    sits in Closed Lost, a closing stage, ever since), one never leaves."""
    facts = [
        Fact(0, LONG_AGO, "pipeline-default", "pipeline", definition_of(DEFAULT_PIPELINE)),
        Fact(1, LONG_AGO, "client-00", "client", {"name": "Acme", "category": "prospect"}),
        Fact(2, LONG_AGO, "deal-000", "opened", in_lead("Left Lead in 2024")),
        Fact(
            3,
            datetime(2018, 5, 2, tzinfo=UTC),
            "deal-001",
            "opened",
            in_lead("Lost in 2025"),
        ),
        Fact(
            4,
            datetime(2018, 7, 9, tzinfo=UTC),
            "deal-002",
            "opened",
            in_lead("Still a lead"),
        ),
        Fact(
            5,
            datetime(2024, 6, 3, tzinfo=UTC),
            "deal-000",
            "stage",
            history.moved("qualified", 25),
        ),
        Fact(
            6,
            START,
            "deal-001",
            "lost",
            history.lost("price"),
        ),
    ]
    empty_store.facts = facts
    tell(empty_store.api, facts, empty_store.told)
    return empty_store


@pytest.mark.parametrize(
    "as_of",
    [datetime(2023, 11, 20, tzinfo=UTC), datetime(2024, 8, 14, tzinfo=UTC), START],
    ids=["all three in Lead", "one moved on", "one lost that day"],
)
def test_given_visits_longer_than_four_years_when_time_in_stage_is_read_as_of_then_it_matches(
    long_visits: GeneratedHistory, as_of: datetime
) -> None:
    figures = long_visits.oracle.time_in_stage(Query(as_of=as_of), as_of)
    lead = next(s for s in figures["stages"] if s["stage"] == "lead")
    assert lead["visits"] >= 2, figures
    check(long_visits, "time in stage", Query(as_of=as_of))
