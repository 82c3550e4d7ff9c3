"""Deal: given these events, when this command, then these events or this error."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from aggregates.context import EventContext
from aggregates.deal import Deal, DealStatus
from aggregates.errors import InvalidValue, RuleBroken
from aggregates.pipeline import PipelineDefinition, Stage, StageKind
from tests.unit.builders import ACTOR, ORG, at, day, on_day, only_event, recorded, replayed

CLIENT = UUID("00000000-0000-4000-8000-0000000000c1")
CLOSE_DATE = date(2024, 6, 30)

DealCommand = Callable[[Deal, EventContext], None]
ENTERPRISE = PipelineDefinition(
    "enterprise",
    "Enterprise",
    (
        Stage("discovery", "Discovery", 5, StageKind.OPEN),
        Stage("pilot", "Pilot", 40, StageKind.OPEN),
        Stage("signed", "Signed", 100, StageKind.WON),
        Stage("dropped", "Dropped", 0, StageKind.LOST),
    ),
)


def open_deal(**overrides: Any) -> Deal:
    """A deal opened on day 0, its DealOpened still pending."""
    fields: dict[str, Any] = {
        "name": "Website redesign",
        "client_id": CLIENT,
        "value": Decimal("12000.00"),
        "currency": "EUR",
        "expected_close_date": CLOSE_DATE,
        "context": on_day(0),
    }
    return Deal.open(**(fields | overrides))


def an_open_deal(**overrides: Any) -> Deal:
    return recorded(open_deal(**overrides))


def a_won_deal() -> Deal:
    deal = open_deal(owner_id="user-bo")
    deal.change_stage("proposal", None, on_day(1))
    deal.win(on_day(2))
    return recorded(deal)


def a_lost_deal() -> Deal:
    deal = open_deal(owner_id="user-bo")
    deal.change_stage("negotiation", None, on_day(1))
    deal.lose("Budget cut", None, on_day(2))
    return recorded(deal)


def a_closed_deal(outcome: str) -> Deal:
    return a_won_deal() if outcome == "won" else a_lost_deal()


def an_archived_deal() -> Deal:
    deal = open_deal()
    deal.archive(on_day(1))
    return recorded(deal)


NEGATIVE_OR_NON_FINITE = [
    Decimal("-0.01"),
    Decimal("NaN"),
    Decimal("sNaN"),
    Decimal("Infinity"),
    Decimal("-Infinity"),
]
NOT_ISO_CURRENCIES = ["eur", "Eur", "EU", "EURO", "E1R", "", " EU"]
OUT_OF_RANGE_PROBABILITIES = [-1, 101, 1000]

COURSE_COMMANDS: dict[str, DealCommand] = {
    "change stage": lambda deal, ctx: deal.change_stage("qualified", None, ctx),
    "change value": lambda deal, ctx: deal.change_value(Decimal("1"), "EUR", ctx),
    "change expected close date": lambda deal, ctx: deal.change_expected_close_date(
        date(2025, 1, 31), ctx
    ),
    "change probability": lambda deal, ctx: deal.change_probability(80, ctx),
    "win": lambda deal, ctx: deal.win(ctx),
    "lose": lambda deal, ctx: deal.lose("Too late", None, ctx),
}
OTHER_COMMANDS: dict[str, DealCommand] = {
    "reassign": lambda deal, ctx: deal.reassign("user-cy", ctx),
    "change stakeholders": lambda deal, ctx: deal.change_stakeholders([uuid4()], ["u"], ctx),
    "change details": lambda deal, ctx: deal.change_details({"notes": "Call back"}, ctx),
    "archive": lambda deal, ctx: deal.archive(ctx),
}
EVERY_COMMAND: dict[str, DealCommand] = (
    COURSE_COMMANDS | OTHER_COMMANDS | {"reopen": lambda deal, ctx: deal.reopen(None, ctx)}
)


# --- opening -------------------------------------------------------------------------------


def test_a_deal_opens_in_the_first_open_stage_of_the_default_pipeline() -> None:
    deal = open_deal()

    opened = only_event(deal)

    assert isinstance(opened, Deal.DealOpened)
    assert (opened.pipeline_id, opened.stage, opened.probability) == ("default", "lead", 10)
    assert (opened.value, opened.currency) == (Decimal("12000.00"), "EUR")
    assert (opened.client_id, opened.expected_close_date) == (CLIENT, CLOSE_DATE)
    assert (deal.stage, deal.status, deal.last_open_stage) == ("lead", DealStatus.OPEN, "lead")


def test_a_deal_opened_with_a_probability_keeps_that_probability() -> None:
    deal = open_deal(probability=40)

    opened = only_event(deal)

    assert (opened.stage, opened.probability) == ("lead", 40)


@pytest.mark.parametrize("probability", [0, 100])
def test_a_deal_can_open_at_the_bounds_of_probability(probability: int) -> None:
    deal = open_deal(probability=probability)

    assert only_event(deal).probability == probability


def test_a_deal_belongs_to_the_organization_of_the_command_that_opened_it() -> None:
    context = on_day(0)

    deal = open_deal(context=context)

    assert only_event(deal).context == context
    assert deal.organization_id == ORG
    assert deal.last_occurred_at == context.occurred_at
    assert not deal.archived


def test_a_deal_opens_in_the_first_open_stage_of_the_pipeline_it_is_given() -> None:
    deal = open_deal(pipeline=ENTERPRISE)

    opened = only_event(deal)

    assert (opened.pipeline_id, opened.stage, opened.probability) == ("enterprise", "discovery", 5)


def test_a_deal_refuses_a_decision_on_another_pipelines_definition() -> None:
    deal = an_open_deal()

    with pytest.raises(RuleBroken, match="pipeline default, not enterprise"):
        deal.change_stage("discovery", None, on_day(1), pipeline=ENTERPRISE)


@pytest.mark.parametrize("value", NEGATIVE_OR_NON_FINITE, ids=str)
def test_a_deal_cannot_open_with_a_negative_or_non_finite_value(value: Decimal) -> None:
    with pytest.raises(InvalidValue) as refused:
        open_deal(value=value)

    assert refused.value.field == "value"


def test_a_deal_can_open_with_a_value_of_zero() -> None:
    deal = open_deal(value=Decimal("0"))

    assert only_event(deal).value == Decimal("0")


@pytest.mark.parametrize("currency", NOT_ISO_CURRENCIES)
def test_a_deal_cannot_open_with_a_currency_that_is_not_an_iso_code(currency: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        open_deal(currency=currency)

    assert refused.value.field == "currency"


def test_a_deal_cannot_open_with_a_currency_of_non_ascii_letters() -> None:
    with pytest.raises(InvalidValue) as refused:
        open_deal(currency="ÉUR")

    assert refused.value.field == "currency"


@pytest.mark.parametrize("probability", OUT_OF_RANGE_PROBABILITIES)
def test_a_deal_cannot_open_with_a_probability_outside_0_to_100(probability: int) -> None:
    with pytest.raises(InvalidValue) as refused:
        open_deal(probability=probability)

    assert refused.value.field == "probability"


# --- stages --------------------------------------------------------------------------------


def test_changing_stage_records_both_stages_and_the_new_stage_probability() -> None:
    deal = an_open_deal()

    deal.change_stage("qualified", None, on_day(1))

    changed = only_event(deal)
    assert isinstance(changed, Deal.StageChanged)
    assert (changed.from_stage, changed.to_stage, changed.probability) == (
        "lead",
        "qualified",
        25,
    )
    assert deal.stage == "qualified"


def test_changing_stage_with_a_probability_records_that_probability() -> None:
    deal = an_open_deal()

    deal.change_stage("proposal", 60, on_day(1))

    assert only_event(deal).probability == 60


def test_a_deal_can_move_back_to_an_earlier_open_stage() -> None:
    deal = an_open_deal()
    deal.change_stage("negotiation", None, on_day(1))
    recorded(deal)

    deal.change_stage("qualified", None, on_day(2))

    changed = only_event(deal)
    assert (changed.from_stage, changed.to_stage) == ("negotiation", "qualified")


def test_a_deal_cannot_move_to_an_unknown_stage() -> None:
    deal = an_open_deal()

    with pytest.raises(InvalidValue) as refused:
        deal.change_stage("signed", None, on_day(1))

    assert refused.value.field == "stage"
    assert deal.collect_events() == []


@pytest.mark.parametrize("closing_stage", ["closed_won", "closed_lost"])
def test_a_deal_cannot_move_to_a_closing_stage_it_must_be_won_or_lost(closing_stage: str) -> None:
    deal = an_open_deal()

    with pytest.raises(RuleBroken, match="win or lose"):
        deal.change_stage(closing_stage, None, on_day(1))

    assert deal.collect_events() == []
    assert deal.is_open


def test_a_deal_cannot_move_to_the_stage_it_is_already_in() -> None:
    deal = an_open_deal()

    with pytest.raises(RuleBroken, match="already in stage"):
        deal.change_stage("lead", None, on_day(1))

    assert deal.collect_events() == []


@pytest.mark.parametrize("probability", OUT_OF_RANGE_PROBABILITIES)
def test_a_stage_change_cannot_carry_a_probability_outside_0_to_100(probability: int) -> None:
    deal = an_open_deal()

    with pytest.raises(InvalidValue) as refused:
        deal.change_stage("qualified", probability, on_day(1))

    assert refused.value.field == "probability"
    assert deal.collect_events() == []
    assert deal.stage == "lead"


# --- value, expected close date, probability -----------------------------------------------


def test_changing_value_records_the_new_value_and_currency() -> None:
    deal = an_open_deal()

    deal.change_value(Decimal("9500.50"), "USD", on_day(1))

    changed = only_event(deal)
    assert isinstance(changed, Deal.DealValueChanged)
    assert (changed.value, changed.currency) == (Decimal("9500.50"), "USD")
    assert (deal.value, deal.currency) == (Decimal("9500.50"), "USD")


@pytest.mark.parametrize("value", NEGATIVE_OR_NON_FINITE, ids=str)
def test_a_deal_value_cannot_become_negative_or_non_finite(value: Decimal) -> None:
    deal = an_open_deal()

    with pytest.raises(InvalidValue) as refused:
        deal.change_value(value, "EUR", on_day(1))

    assert refused.value.field == "value"
    assert deal.collect_events() == []


@pytest.mark.parametrize("currency", NOT_ISO_CURRENCIES)
def test_a_deal_currency_cannot_become_a_code_that_is_not_iso(currency: str) -> None:
    deal = an_open_deal()

    with pytest.raises(InvalidValue) as refused:
        deal.change_value(Decimal("100"), currency, on_day(1))

    assert refused.value.field == "currency"
    assert deal.collect_events() == []
    assert deal.currency == "EUR"


def test_changing_the_expected_close_date_records_it() -> None:
    deal = an_open_deal()

    deal.change_expected_close_date(date(2024, 9, 30), on_day(1))

    changed = only_event(deal)
    assert isinstance(changed, Deal.ExpectedCloseDateChanged)
    assert changed.expected_close_date == date(2024, 9, 30)


def test_changing_probability_records_it() -> None:
    deal = an_open_deal()

    deal.change_probability(35, on_day(1))

    changed = only_event(deal)
    assert isinstance(changed, Deal.ProbabilityChanged)
    assert changed.probability == 35


@pytest.mark.parametrize("probability", OUT_OF_RANGE_PROBABILITIES)
def test_a_probability_change_outside_0_to_100_is_refused(probability: int) -> None:
    deal = an_open_deal()

    with pytest.raises(InvalidValue) as refused:
        deal.change_probability(probability, on_day(1))

    assert refused.value.field == "probability"
    assert deal.collect_events() == []


# --- owner, stakeholders, details ----------------------------------------------------------


def test_reassigning_records_the_new_owner() -> None:
    deal = an_open_deal(owner_id="user-bo")

    deal.reassign("user-cy", on_day(1))

    changed = only_event(deal)
    assert isinstance(changed, Deal.DealReassigned)
    assert changed.owner_id == "user-cy"
    assert deal.owner_id == "user-cy"


def test_a_deal_can_be_left_unassigned() -> None:
    deal = an_open_deal(owner_id="user-bo")

    deal.reassign(None, on_day(1))

    assert only_event(deal).owner_id is None


def test_reassigning_to_the_current_owner_is_refused() -> None:
    deal = an_open_deal(owner_id="user-bo")

    with pytest.raises(RuleBroken, match="already owned"):
        deal.reassign("user-bo", on_day(1))

    assert deal.collect_events() == []


def test_changing_stakeholders_records_the_new_lists() -> None:
    deal = an_open_deal()
    contact = uuid4()

    deal.change_stakeholders([contact], ["user-cy"], on_day(1))

    changed = only_event(deal)
    assert isinstance(changed, Deal.StakeholdersChanged)
    assert (changed.contact_ids, changed.user_ids) == ([contact], ["user-cy"])


def test_changing_details_records_only_the_changes_given() -> None:
    deal = an_open_deal()

    deal.change_details({"name": "Website v2", "notes": None}, on_day(1))

    changed = only_event(deal)
    assert isinstance(changed, Deal.DealDetailsChanged)
    assert changed.changes == {"name": "Website v2", "notes": None}


def test_changing_details_with_no_changes_is_refused() -> None:
    deal = an_open_deal()

    with pytest.raises(InvalidValue) as refused:
        deal.change_details({}, on_day(1))

    assert refused.value.field == "body"
    assert deal.collect_events() == []


# --- winning and losing --------------------------------------------------------------------


def test_winning_records_the_value_and_currency_at_the_time_of_winning() -> None:
    deal = an_open_deal()
    deal.change_value(Decimal("15000"), "GBP", on_day(1))
    recorded(deal)

    deal.win(on_day(2))

    won = only_event(deal)
    assert isinstance(won, Deal.DealWon)
    assert (won.stage, won.value, won.currency) == ("closed_won", Decimal("15000"), "GBP")


def test_a_won_deal_is_in_the_won_stage() -> None:
    deal = an_open_deal()

    deal.win(on_day(1))

    assert (deal.status, deal.stage, deal.is_open) == (DealStatus.WON, "closed_won", False)


def test_losing_records_the_reason_and_the_competitor() -> None:
    deal = an_open_deal()

    deal.lose("Price too high", "Acme Web", on_day(1))

    lost = only_event(deal)
    assert isinstance(lost, Deal.DealLost)
    assert (lost.stage, lost.reason, lost.competitor) == (
        "closed_lost",
        "Price too high",
        "Acme Web",
    )
    assert (deal.status, deal.stage) == (DealStatus.LOST, "closed_lost")


def test_a_deal_can_be_lost_without_a_known_competitor() -> None:
    deal = an_open_deal()

    deal.lose("No decision", None, on_day(1))

    assert only_event(deal).competitor is None


@pytest.mark.parametrize("command", COURSE_COMMANDS.values(), ids=COURSE_COMMANDS.keys())
@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_a_closed_deal_cannot_change_its_course(outcome: str, command: DealCommand) -> None:
    deal = a_closed_deal(outcome)

    with pytest.raises(RuleBroken, match=f"is {outcome} and cannot"):
        command(deal, on_day(3))

    assert deal.collect_events() == []
    assert deal.status == outcome


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_a_closed_deal_can_still_be_reassigned(outcome: str) -> None:
    deal = a_closed_deal(outcome)

    deal.reassign("user-cy", on_day(3))

    assert isinstance(only_event(deal), Deal.DealReassigned)


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_a_closed_deal_can_still_have_its_details_changed(outcome: str) -> None:
    deal = a_closed_deal(outcome)

    deal.change_details({"notes": "Signed on paper"}, on_day(3))

    assert isinstance(only_event(deal), Deal.DealDetailsChanged)


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_a_closed_deal_can_still_change_stakeholders(outcome: str) -> None:
    deal = a_closed_deal(outcome)

    deal.change_stakeholders([], ["user-cy"], on_day(3))

    assert isinstance(only_event(deal), Deal.StakeholdersChanged)


# --- reopening -----------------------------------------------------------------------------


def test_reopening_a_won_deal_returns_it_to_its_last_open_stage() -> None:
    deal = a_won_deal()  # won from "proposal"

    deal.reopen(None, on_day(3))

    reopened = only_event(deal)
    assert isinstance(reopened, Deal.DealReopened)
    assert (reopened.stage, reopened.probability) == ("proposal", 50)
    assert (deal.status, deal.stage) == (DealStatus.OPEN, "proposal")


def test_reopening_a_lost_deal_returns_it_to_its_last_open_stage() -> None:
    deal = a_lost_deal()  # lost from "negotiation"

    deal.reopen(None, on_day(3))

    reopened = only_event(deal)
    assert (reopened.stage, reopened.probability) == ("negotiation", 75)


def test_reopening_at_a_given_open_stage_uses_that_stage_and_its_probability() -> None:
    deal = a_lost_deal()

    deal.reopen("qualified", on_day(3))

    reopened = only_event(deal)
    assert (reopened.stage, reopened.probability) == ("qualified", 25)
    assert deal.last_open_stage == "qualified"


@pytest.mark.parametrize("stage", ["closed_won", "closed_lost", "signed"])
def test_a_deal_cannot_be_reopened_at_a_closing_or_unknown_stage(stage: str) -> None:
    deal = a_lost_deal()

    with pytest.raises(InvalidValue) as refused:
        deal.reopen(stage, on_day(3))

    assert refused.value.field == "stage"
    assert deal.collect_events() == []
    assert deal.status == DealStatus.LOST


def test_an_open_deal_cannot_be_reopened() -> None:
    deal = an_open_deal()

    with pytest.raises(RuleBroken, match="only a won or lost deal"):
        deal.reopen(None, on_day(1))

    assert deal.collect_events() == []


def test_a_reopened_deal_can_change_stage_again() -> None:
    deal = a_won_deal()
    deal.reopen(None, on_day(3))
    recorded(deal)

    deal.change_stage("negotiation", None, on_day(4))

    changed = only_event(deal)
    assert (changed.from_stage, changed.to_stage) == ("proposal", "negotiation")


# --- archiving -----------------------------------------------------------------------------


def test_archiving_records_deal_archived() -> None:
    deal = an_open_deal()

    deal.archive(on_day(1))

    assert isinstance(only_event(deal), Deal.DealArchived)
    assert deal.archived


@pytest.mark.parametrize("command", EVERY_COMMAND.values(), ids=EVERY_COMMAND.keys())
def test_an_archived_deal_refuses_every_change(command: DealCommand) -> None:
    deal = an_archived_deal()

    with pytest.raises(RuleBroken, match="is archived"):
        command(deal, on_day(2))

    assert deal.collect_events() == []


# --- business time -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    (COURSE_COMMANDS | OTHER_COMMANDS).values(),
    ids=(COURSE_COMMANDS | OTHER_COMMANDS).keys(),
)
def test_a_command_dated_before_the_previous_event_is_refused(command: DealCommand) -> None:
    deal = an_open_deal()
    deal.change_value(Decimal("100"), "EUR", on_day(5))
    recorded(deal)

    with pytest.raises(RuleBroken, match="before this record's previous event"):
        command(deal, on_day(4))

    assert deal.collect_events() == []
    assert deal.last_occurred_at == day(5)


def test_reopening_dated_before_the_deal_closed_is_refused() -> None:
    deal = a_lost_deal()  # lost on day 2

    with pytest.raises(RuleBroken, match="before this record's previous event"):
        deal.reopen(None, at(day(2) - timedelta(seconds=1)))

    assert deal.collect_events() == []


def test_a_command_dated_at_the_same_time_as_the_previous_event_is_accepted() -> None:
    deal = an_open_deal()

    deal.change_stage("qualified", None, on_day(0))

    assert only_event(deal).context.occurred_at == day(0)


def test_a_command_dated_later_moves_the_deal_clock_forward() -> None:
    deal = an_open_deal()

    deal.change_probability(20, on_day(7))

    assert only_event(deal).context.occurred_at == day(7)
    assert deal.last_occurred_at == day(7)


def test_the_business_time_compares_instants_not_wall_clock_readings() -> None:
    deal = an_open_deal()  # 09:00 UTC on day 0
    madrid_summer = timezone(timedelta(hours=2))

    with pytest.raises(RuleBroken):  # 10:30 at +02:00 is 08:30 UTC
        deal.change_probability(20, at(datetime(2024, 3, 1, 10, 30, tzinfo=madrid_summer)))

    assert deal.collect_events() == []


def test_a_backfilled_history_is_accepted_when_in_order() -> None:
    opened, proposed, won = (datetime(2019, 5, d, 8, 0, tzinfo=UTC) for d in (6, 9, 26))
    deal = open_deal(context=at(opened))
    deal.change_stage("proposal", None, at(proposed))
    deal.win(at(won))

    events: Sequence[Any] = deal.collect_events()

    assert [type(e).__name__ for e in events] == ["DealOpened", "StageChanged", "DealWon"]
    assert [e.context.occurred_at for e in events] == [opened, proposed, won]
    assert all(e.timestamp > e.context.occurred_at for e in events)  # recorded now


def test_every_event_carries_who_caused_it_and_why() -> None:
    deal = an_open_deal()
    context = on_day(1)

    deal.change_stage("qualified", None, context)

    changed = only_event(deal)
    assert changed.context.actor_id == ACTOR
    assert (changed.context.command_id, changed.context.correlation_id) == (
        context.command_id,
        context.correlation_id,
    )


# --- reconstruction from events ------------------------------------------------------------


def test_a_deal_replayed_from_its_events_has_the_same_state() -> None:
    deal = open_deal(owner_id="user-bo")
    deal.change_stage("negotiation", 80, on_day(1))
    deal.change_value(Decimal("7000"), "USD", on_day(2))
    deal.reassign("user-cy", on_day(3))

    copy = replayed(Deal, deal.collect_events())

    assert copy.id == deal.id
    assert copy.version == deal.version
    assert copy.__dict__ == deal.__dict__


def test_a_replayed_won_deal_still_refuses_to_change_stage() -> None:
    deal = open_deal()
    deal.win(on_day(1))

    copy = replayed(Deal, deal.collect_events())

    with pytest.raises(RuleBroken, match="is won and cannot"):
        copy.change_stage("qualified", None, on_day(2))
    assert copy.collect_events() == []


def test_a_replayed_lost_deal_reopens_at_its_last_open_stage() -> None:
    deal = open_deal()
    deal.change_stage("negotiation", None, on_day(1))
    deal.lose("Budget cut", None, on_day(2))

    copy = replayed(Deal, deal.collect_events())
    copy.reopen(None, on_day(3))

    assert only_event(copy).stage == "negotiation"


def test_a_replayed_deal_refuses_a_command_dated_before_its_last_event() -> None:
    deal = open_deal()
    deal.change_probability(30, on_day(5))

    copy = replayed(Deal, deal.collect_events())

    with pytest.raises(RuleBroken, match="before this record's previous event"):
        copy.change_probability(40, on_day(4))
    assert copy.collect_events() == []


def test_a_replayed_archived_deal_refuses_changes() -> None:
    deal = open_deal()
    deal.archive(on_day(1))

    copy = replayed(Deal, deal.collect_events())

    with pytest.raises(RuleBroken, match="is archived"):
        copy.reassign("user-cy", on_day(2))
    assert copy.collect_events() == []
