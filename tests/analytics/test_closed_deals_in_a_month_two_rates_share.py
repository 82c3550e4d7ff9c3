"""Closed deals in a month whose exchange rate changes after its first day: the closed deals'
monthly summary cannot convert that month's sum at one rate, so win/loss and salespeople read
those deals from their rows, each at the rate of its close day (projections.closed_summary)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tests.analytics import history
from tests.analytics.history import DEFAULT_PIPELINE, Fact, definition_of, tell
from tests.analytics.oracle import Query
from tests.analytics.suite import GeneratedHistory, check

OPENED = datetime(2025, 1, 10, 9, tzinfo=UTC)
CLOSES = (  # (day, outcome) in USD: March around its rate change, then a whole April
    (datetime(2025, 3, 5, 15, tzinfo=UTC), "won"),
    (datetime(2025, 3, 16, 23, 59, tzinfo=UTC), "lost"),
    (datetime(2025, 3, 17, 0, 1, tzinfo=UTC), "won"),
    (datetime(2025, 3, 28, 12, tzinfo=UTC), "lost"),
    (datetime(2025, 4, 9, 10, tzinfo=UTC), "won"),
)
RATES = (  # USD in EUR: from February 1st, then from March 17th (mid-month)
    (date(2025, 2, 1), Decimal("0.9100")),
    (date(2025, 3, 17), Decimal("0.9500")),
)


def in_usd(name: str, value: str) -> dict[str, object]:
    opened = history.opened_in_lead("client-00", name, Decimal(value), date(2025, 6, 30))
    return {**opened, "currency": "USD"}


@pytest.fixture
def split_month(empty_store: GeneratedHistory) -> GeneratedHistory:
    facts = [
        Fact(0, OPENED, "pipeline-default", "pipeline", definition_of(DEFAULT_PIPELINE)),
        Fact(1, OPENED, "client-00", "client", {"name": "Acme", "category": "prospect"}),
    ]
    for day, rate in RATES:
        at = datetime(2025, 1, 2, tzinfo=UTC)
        data = {"currency": "USD", "rate": rate, "from": day}
        facts.append(Fact(len(facts), at, "exchange-rates", "rate", data))
    for n, (closed_at, outcome) in enumerate(CLOSES):
        deal = f"deal-{n:03d}"
        facts.append(Fact(len(facts), OPENED, deal, "opened", in_usd(deal, f"{1000 + 7 * n}.25")))
        data = {"stage": "closed_won"} if outcome == "won" else history.lost("price")
        facts.append(Fact(len(facts), closed_at, deal, outcome, data))
    empty_store.facts = facts
    tell(empty_store.api, facts, empty_store.told)
    return empty_store


@pytest.mark.parametrize(
    "query",
    [
        Query(),
        Query(
            period_from=datetime(2025, 3, 1, tzinfo=UTC), period_to=datetime(2025, 5, 1, tzinfo=UTC)
        ),
        Query(period_from=datetime(2025, 3, 10, tzinfo=UTC)),
    ],
    ids=["all time", "March and April", "from within March"],
)
@pytest.mark.parametrize(
    "name", ["win-loss by lost_reason", "win-loss by client_category", "salespeople"]
)
def test_given_closes_around_a_mid_month_rate_when_read_now_then_each_converts_at_its_days_rate(
    split_month: GeneratedHistory, name: str, query: Query
) -> None:
    expected = split_month.oracle.win_loss(Query(), "lost_reason")
    assert sum(group["won"] + group["lost"] for group in expected["groups"]) == len(CLOSES)
    check(split_month, name, query)
