"""Deals whose steps share one business instant — an import opening a deal straight into a
later stage, a deal won the moment it reaches negotiation — still give every figure of the
log replayed up to any instant; zero-length stage visits included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest

from tests.analytics.history import (
    DEFAULT_PIPELINE,
    END,
    START,
    Fact,
    definition_of,
    lost,
    moved,
    opened_in_lead,
    tell,
)
from tests.analytics.oracle import Query
from tests.analytics.suite import ANALYTICS, GeneratedHistory, check, crowded, difference


def shared_instant(near: datetime) -> datetime:
    """The business instant nearest ``near`` at which one deal took two steps."""
    facts = sorted(crowded(), key=lambda f: (f.record, f.seq))
    shared = [b.at for a, b in pairwise(facts) if (a.record, a.at) == (b.record, b.at)]
    return min(shared, key=lambda at: abs(at - near))


@pytest.mark.parametrize(
    "query",
    [
        Query(),
        Query(as_of=START + (END - START) / 2),
        Query(as_of=shared_instant(START + (END - START) / 3)),
        Query(owner="ana", period_from=shared_instant(START + (END - START) / 4), as_of=END),
    ],
    ids=["now", "as of the middle", "at a shared instant", "owner, period from a shared instant"],
)
def test_every_analytic_but_conversion_matches_when_steps_share_an_instant(
    crowded_history: GeneratedHistory, query: Query
) -> None:
    problems = [
        difference(crowded_history, name, query) for name in ANALYTICS if name != "conversion"
    ]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


def test_conversion_matches_when_steps_share_an_instant(
    crowded_history: GeneratedHistory,
) -> None:
    check(crowded_history, "conversion", Query())


def test_a_deal_moved_on_at_the_instant_it_entered_a_stage_converted_from_that_stage(
    empty_store: GeneratedHistory,
) -> None:
    opened_at = datetime(2025, 3, 3, 9, tzinfo=UTC)
    facts = [
        Fact(0, START, "pipeline-default", "pipeline", definition_of(DEFAULT_PIPELINE)),
        Fact(1, START, "client-00", "client", {"name": "Acme", "category": "prospect"}),
        Fact(
            2,
            opened_at,
            "deal-000",
            "opened",
            opened_in_lead(
                "client-00",
                "Imported straight into Qualified",
                Decimal("1000.00"),
                date(2025, 4, 30),
            ),
        ),
        Fact(3, opened_at, "deal-000", "stage", moved("qualified", 25)),
        Fact(4, opened_at + timedelta(days=3), "deal-000", "lost", lost("price")),
    ]
    empty_store.facts = facts
    tell(empty_store.api, facts, empty_store.told)
    assert empty_store.oracle.conversion(Query())["stages"][0]["converted"] == 1
    check(empty_store, "conversion", Query())
