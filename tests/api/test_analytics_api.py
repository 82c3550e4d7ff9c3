"""Sales analytics over HTTP against figures computed here, independently, from the same history.

Every deal is backfilled through the command API with business times, so each sales cycle is
a known number of days; expectations come from the stories with :mod:`statistics`, never
from the service's own code.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.builders import DealStory, accepted, invalid_parameters, tell
from tests.api.helpers import open_deal, read, register_client


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


MARCH, APRIL = utc(2025, 3, 1), utc(2025, 4, 1)
CLOSED = (
    DealStory("1000", utc(2025, 1, 1), owner="maria", outcome="won", closed_at=utc(2025, 1, 11)),
    DealStory("2000", utc(2025, 1, 5), owner="jon", outcome="won", closed_at=utc(2025, 2, 4, 12)),
    DealStory("3000", utc(2025, 1, 10), "USD", "maria", "proposal", outcome="won", closed_at=MARCH),
    DealStory("500", utc(2025, 2, 1), owner="jon", outcome="won", closed_at=utc(2025, 3, 15)),
    DealStory("700", utc(2025, 1, 20), owner="maria", outcome="won", closed_at=APRIL),
    DealStory("900", utc(2025, 1, 2), owner="jon", outcome="lost", closed_at=utc(2025, 1, 7)),
    DealStory(
        "100", utc(2025, 2, 10), "USD", "maria", outcome="lost", closed_at=utc(2025, 3, 20, 6)
    ),
    DealStory(
        "300", utc(2025, 3, 1), owner="jon", outcome="lost", closed_at=utc(2025, 3, 31, 23, 59, 59)
    ),
)
OPEN = (
    DealStory("1000", utc(2025, 5, 1), owner="maria"),
    DealStory("2500.50", utc(2025, 5, 2), owner="jon"),
    DealStory("4000", utc(2025, 5, 3), "USD", "maria", "proposal"),
    DealStory("3000", utc(2025, 5, 4), owner="jon", stage="negotiation"),
    DealStory("800", utc(2025, 5, 5), owner="maria", stage="qualified", probability=40),
    DealStory("5000", utc(2025, 5, 6), owner="jon", stage="proposal", archived=True),
)


@pytest.fixture
def history(api: TestClient) -> int:
    """The stories above, told through the API; the position that includes them all."""
    client = register_client(api, occurred_at="2024-12-01T00:00:00Z")["id"]
    return max(tell(api, client, story) for story in (*CLOSED, *OPEN))


def in_period(story: DealStory, start: datetime | None, end: datetime | None) -> bool:
    assert story.closed_at is not None
    return (start is None or story.closed_at >= start) and (end is None or story.closed_at < end)


def closed(
    outcome: str,
    owner: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[DealStory]:
    return [
        story
        for story in CLOSED
        if story.outcome == outcome
        and (owner is None or story.owner == owner)
        and in_period(story, start, end)
    ]


def expected_pipeline(
    stories: Sequence[DealStory],
) -> dict[tuple[str, str], tuple[int, Decimal, Decimal]]:
    """(stage, currency) → (deals, Σ value, Σ weighted value) of the open, unarchived stories."""
    totals: dict[tuple[str, str], tuple[int, Decimal, Decimal]] = defaultdict(
        lambda: (0, Decimal(0), Decimal(0))
    )
    for story in stories:
        if story.outcome is None and not story.archived:
            deals, value, weighted = totals[(story.open_stage, story.currency)]
            totals[(story.open_stage, story.currency)] = (
                deals + 1,
                value + Decimal(story.value),
                weighted + story.weighted,
            )
    return dict(totals)


def answered_pipeline(body: dict[str, Any]) -> dict[tuple[str, str], tuple[int, Decimal, Decimal]]:
    return {
        (stage["stage"], total["currency"]): (
            total["deals"],
            Decimal(total["value"]),
            Decimal(total["weighted_value"]),
        )
        for stage in body["stages"]
        for total in stage["by_currency"]
    }


def p90(days: list[float]) -> float:
    """The 90th percentile, linear between closest ranks; one point is its own percentile."""
    return days[0] if len(days) == 1 else statistics.quantiles(days, n=10, method="inclusive")[-1]


def expected_stats(days: list[float]) -> dict[str, Any]:
    if not days:
        return {"deals": 0, "mean_days": None, "median_days": None, "p90_days": None}
    return {
        "deals": len(days),
        "mean_days": pytest.approx(statistics.fmean(days)),
        "median_days": pytest.approx(statistics.median(days)),
        "p90_days": pytest.approx(p90(days)),
    }


def iso(moment: datetime) -> str:
    return moment.isoformat()


# --- pipeline value ----------------------------------------------------------------------


def test_pipeline_value_sums_open_deals_per_stage_and_currency(
    api: TestClient, history: int
) -> None:
    body = read(api, "/analytics/pipeline-value", history)

    assert answered_pipeline(body) == expected_pipeline(OPEN)
    assert [stage["stage"] for stage in body["stages"]] == [
        "lead",
        "qualified",
        "proposal",
        "negotiation",
    ]
    deals = {stage["stage"]: stage["deals"] for stage in body["stages"]}
    assert deals == {"lead": 2, "qualified": 1, "proposal": 1, "negotiation": 1}


def test_pipeline_value_of_one_owner_counts_only_their_deals(api: TestClient, history: int) -> None:
    body = read(api, "/analytics/pipeline-value", history, owner="maria")

    assert answered_pipeline(body) == expected_pipeline([s for s in OPEN if s.owner == "maria"])


def test_archiving_an_open_deal_takes_it_out_of_the_pipeline_value(api: TestClient) -> None:
    client = register_client(api)["id"]
    kept = open_deal(api, client, value="100")
    archived = open_deal(api, client, value="900")
    assert read(api, "/analytics/pipeline-value", archived["position"])["stages"][0]["deals"] == 2

    position = accepted(api.post(f"/deals/{archived['id']}/archive"))["position"]

    lead = read(api, "/analytics/pipeline-value", position)["stages"][0]
    assert (lead["deals"], lead["by_currency"][0]["value"]) == (1, "100.0000")
    assert kept["id"] != archived["id"]


def test_a_won_deal_leaves_the_pipeline_value(api: TestClient) -> None:
    client = register_client(api)["id"]
    deal = open_deal(api, client)

    position = accepted(api.post(f"/deals/{deal['id']}/win"))["position"]

    stages = read(api, "/analytics/pipeline-value", position)["stages"]
    assert all(stage["deals"] == 0 and stage["by_currency"] == [] for stage in stages)


def test_pipeline_value_period_filters_on_the_expected_close_date(api: TestClient) -> None:
    client = register_client(api)["id"]
    tell(api, client, DealStory("100", utc(2025, 1, 1), expected_close_date="2026-02-28"))
    position = tell(
        api, client, DealStory("200", utc(2025, 1, 1), expected_close_date="2026-03-01")
    )

    body = read(api, "/analytics/pipeline-value", position, **{"from": "2026-03-01"})

    assert answered_pipeline(body) == {("lead", "EUR"): (1, Decimal(200), Decimal(20))}


def test_the_pipeline_filter_names_a_pipeline_and_refuses_an_unknown_one(
    api: TestClient, history: int
) -> None:
    default = read(api, "/analytics/pipeline-value", history, pipeline="default")

    unknown = api.get("/analytics/pipeline-value", params={"pipeline": "enterprise"})

    assert answered_pipeline(default) == expected_pipeline(OPEN)
    assert invalid_parameters(unknown) == {"pipeline"}


# --- win rate ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "start", "end"),
    [(None, None, None), ("maria", None, None), ("jon", None, None), (None, MARCH, APRIL)],
)
def test_win_rate_is_won_over_closed_deals(
    api: TestClient,
    history: int,
    owner: str | None,
    start: datetime | None,
    end: datetime | None,
) -> None:
    params = {
        key: value
        for key, value in {
            "owner": owner,
            "from": start and iso(start),
            "to": end and iso(end),
        }.items()
        if value is not None
    }
    won, lost = len(closed("won", owner, start, end)), len(closed("lost", owner, start, end))

    body = read(api, "/analytics/win-rate", history, **params)

    assert (body["won"], body["lost"]) == (won, lost)
    assert body["win_rate"] == pytest.approx(won / (won + lost))


def test_a_deal_closed_exactly_at_the_period_start_counts_and_one_at_its_end_does_not(
    api: TestClient,
) -> None:
    client = register_client(api)["id"]
    tell(api, client, DealStory("1", utc(2025, 1, 1), outcome="won", closed_at=MARCH))
    position = tell(api, client, DealStory("1", utc(2025, 1, 1), outcome="lost", closed_at=APRIL))

    body = read(api, "/analytics/win-rate", position, **{"from": iso(MARCH), "to": iso(APRIL)})

    assert (body["won"], body["lost"], body["win_rate"]) == (1, 0, 1.0)


def test_win_rate_is_null_when_no_deal_closed(api: TestClient) -> None:
    position = open_deal(api, register_client(api)["id"])["position"]

    body = read(api, "/analytics/win-rate", position)

    assert body == {"won": 0, "lost": 0, "win_rate": None}


def test_win_rate_is_null_for_a_period_without_closed_deals(api: TestClient, history: int) -> None:
    body = read(api, "/analytics/win-rate", history, **{"from": "2020-01-01", "to": "2021-01-01"})

    assert body == {"won": 0, "lost": 0, "win_rate": None}


def test_an_archived_won_deal_still_counts_in_the_win_rate(api: TestClient) -> None:
    client = register_client(api)["id"]
    tell(api, client, DealStory("1", utc(2025, 1, 1), outcome="won", closed_at=utc(2025, 1, 2)))
    position = tell(
        api,
        client,
        DealStory("1", utc(2025, 1, 1), outcome="lost", closed_at=utc(2025, 1, 3), archived=True),
    )

    body = read(api, "/analytics/win-rate", position)

    assert (body["won"], body["lost"], body["win_rate"]) == (1, 1, 0.5)


def test_a_reopened_deal_leaves_the_win_rate_and_returns_to_the_pipeline(
    api: TestClient,
) -> None:
    deal = open_deal(api, register_client(api)["id"], value="250")
    accepted(api.post(f"/deals/{deal['id']}/lose", json={"reason": "budget"}))

    position = accepted(api.post(f"/deals/{deal['id']}/reopen"))["position"]

    assert read(api, "/analytics/win-rate", position)["win_rate"] is None
    lead = read(api, "/analytics/pipeline-value", position)["stages"][0]
    assert lead["by_currency"] == [
        {"currency": "EUR", "deals": 1, "value": "250.0000", "weighted_value": "25.0000"}
    ]


# --- sales cycle -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "start", "end"),
    [(None, None, None), ("maria", None, None), (None, MARCH, APRIL), ("jon", MARCH, None)],
)
def test_sales_cycle_statistics_match_an_independent_computation(
    api: TestClient,
    history: int,
    owner: str | None,
    start: datetime | None,
    end: datetime | None,
) -> None:
    params = {
        key: value
        for key, value in {
            "owner": owner,
            "from": start and iso(start),
            "to": end and iso(end),
        }.items()
        if value is not None
    }

    body = read(api, "/analytics/sales-cycle", history, **params)

    won = [story.cycle_days for story in closed("won", owner, start, end)]
    lost = [story.cycle_days for story in closed("lost", owner, start, end)]
    assert body["won"] == expected_stats(won)
    assert body["lost"] == expected_stats(lost)


def test_sales_cycle_days_are_exact_fractions_of_business_time(api: TestClient) -> None:
    client = register_client(api)["id"]
    position = tell(
        api, client, DealStory("1", utc(2025, 1, 1), outcome="won", closed_at=utc(2025, 1, 3, 18))
    )

    won = read(api, "/analytics/sales-cycle", position)["won"]

    assert won == {"deals": 1, "mean_days": 2.75, "median_days": 2.75, "p90_days": 2.75}


def test_the_sales_cycle_period_keeps_its_start_and_leaves_out_its_end(
    api: TestClient, history: int
) -> None:
    body = read(api, "/analytics/sales-cycle", history, **{"from": iso(MARCH), "to": iso(APRIL)})

    assert body["won"]["deals"] == 2
    assert body["won"]["mean_days"] == pytest.approx(statistics.fmean([50.0, 42.0]))


def test_sales_cycle_statistics_are_null_when_no_deal_closed(api: TestClient) -> None:
    position = open_deal(api, register_client(api)["id"])["position"]

    body = read(api, "/analytics/sales-cycle", position)

    assert body["won"] == body["lost"] == expected_stats([])


# --- filters -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["pipeline-value", "win-rate", "sales-cycle"])
def test_a_period_that_ends_before_it_starts_is_refused_naming_to(
    api: TestClient, path: str
) -> None:
    response = api.get(f"/analytics/{path}", params={"from": "2025-04-01", "to": "2025-03-01"})

    assert invalid_parameters(response) == {"to"}


@pytest.mark.parametrize("value", ["yesterday", "2025-03-01T10:00:00", "2025-02-30"])
def test_a_period_bound_that_is_not_a_date_or_instant_with_offset_is_refused(
    api: TestClient, value: str
) -> None:
    response = api.get("/analytics/win-rate", params={"from": value})

    assert {field.split(".")[0] for field in invalid_parameters(response)} == {"from"}


LARGEST_VALUE = "100000000000"  # the command API's upper bound for a deal's value


def test_a_deal_at_the_largest_accepted_value_and_full_probability_is_projected_exactly(
    api: TestClient,
) -> None:
    deal = open_deal(api, register_client(api)["id"], value=LARGEST_VALUE, probability=100)

    lead = read(api, "/analytics/pipeline-value", deal["position"])["stages"][0]

    assert lead["by_currency"] == [
        {
            "currency": "EUR",
            "deals": 1,
            "value": f"{LARGEST_VALUE}.0000",
            "weighted_value": f"{LARGEST_VALUE}.0000",
        }
    ]


def test_the_pipeline_value_of_many_of_the_largest_deals_is_exact(api: TestClient) -> None:
    client = register_client(api)["id"]
    deals = [open_deal(api, client, value=LARGEST_VALUE, probability=100) for _ in range(93)]

    lead = read(api, "/analytics/pipeline-value", deals[-1]["position"])["stages"][0]

    assert lead["deals"] == 93
    assert Decimal(lead["by_currency"][0]["weighted_value"]) == 93 * Decimal(LARGEST_VALUE)
