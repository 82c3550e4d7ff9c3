"""Pipeline: given these events, when this command, then these events or this error."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from aggregates.deal import Deal, DealStatus
from aggregates.errors import InvalidValue, RuleBroken
from aggregates.pipeline import (
    DEFAULT_PIPELINE,
    Pipeline,
    PipelineDefinition,
    Stage,
    StageKind,
)
from tests.unit.builders import ORG, OTHER_ORG, at, day, on_day, only_event, recorded, replayed

OPEN, WON, LOST = StageKind.OPEN, StageKind.WON, StageKind.LOST
ENTERPRISE_STAGES = (
    Stage("discovery", "Discovery", 5, OPEN),
    Stage("pilot", "Pilot", 40, OPEN),
    Stage("signed", "Signed", 100, WON),
    Stage("dropped", "Dropped", 0, LOST),
)
CLIENT = UUID("00000000-0000-4000-8000-0000000000c1")


def an_enterprise_pipeline() -> Pipeline:
    return recorded(Pipeline.define("enterprise", "Enterprise", ENTERPRISE_STAGES, on_day(0)))


def a_default_pipeline() -> Pipeline:
    return recorded(Pipeline.default(on_day(0)))


def stage_ids(pipeline: Pipeline) -> list[str]:
    return [stage.id for stage in pipeline.definition.stages]


def an_open_deal(pipeline: PipelineDefinition = DEFAULT_PIPELINE, **fields: Any) -> Deal:
    return recorded(
        Deal.open(
            name="Website redesign",
            client_id=CLIENT,
            value=Decimal("1000"),
            currency="EUR",
            expected_close_date=date(2024, 6, 30),
            context=on_day(0),
            pipeline=pipeline,
            **fields,
        )
    )


# --- defining ------------------------------------------------------------------------------


def test_the_default_pipeline_has_the_six_stages_of_the_spec_in_order() -> None:
    pipeline = Pipeline.default(on_day(0))

    defined = only_event(pipeline)

    assert isinstance(defined, Pipeline.PipelineDefined)
    assert defined.pipeline_id == "default"
    assert [(s["id"], s["name"], s["probability"], s["kind"]) for s in defined.stages] == [
        ("lead", "Lead", 10, "open"),
        ("qualified", "Qualified", 25, "open"),
        ("proposal", "Proposal", 50, "open"),
        ("negotiation", "Negotiation", 75, "open"),
        ("closed_won", "Closed Won", 100, "won"),
        ("closed_lost", "Closed Lost", 0, "lost"),
    ]
    assert pipeline.definition == DEFAULT_PIPELINE


def test_a_pipelines_id_derives_from_its_organization_and_its_own_id() -> None:
    ours = Pipeline.define("enterprise", "Enterprise", ENTERPRISE_STAGES, on_day(0))
    again = Pipeline.define("enterprise", "Other name", ENTERPRISE_STAGES, on_day(1))
    theirs = Pipeline.define("enterprise", "Enterprise", ENTERPRISE_STAGES, at(day(0), OTHER_ORG))

    assert ours.id == again.id == Pipeline.id_for(ORG, "enterprise")
    assert theirs.id != ours.id


def test_a_defined_pipeline_replays_to_the_same_definition() -> None:
    pipeline = Pipeline.define("enterprise", "Enterprise", ENTERPRISE_STAGES, on_day(0))
    pipeline.rename("Big accounts", on_day(1))
    pipeline.add_stage(Stage("legal", "Legal review", 60, OPEN), None, on_day(2))
    pipeline.reorder(["pilot", "discovery", "legal", "signed", "dropped"], on_day(3))
    pipeline.remove_stage("discovery", None, [], on_day(4))

    copy = replayed(Pipeline, pipeline.collect_events())

    assert copy.definition == pipeline.definition
    assert copy.removed_stage_ids == ["discovery"]


@pytest.mark.parametrize(
    ("stages", "field"),
    [
        (ENTERPRISE_STAGES[:2] + ENTERPRISE_STAGES[3:], "stages"),  # no won stage
        (ENTERPRISE_STAGES[:3], "stages"),  # no lost stage
        (ENTERPRISE_STAGES[2:], "stages"),  # no open stage
        ((*ENTERPRISE_STAGES, Stage("won2", "Won again", 100, WON)), "stages"),
        ((Stage("pilot", "Pilot 2", 10, OPEN), *ENTERPRISE_STAGES), "stages.2.id"),
        ((Stage("Bad Id", "Bad", 10, OPEN), *ENTERPRISE_STAGES[2:]), "stages.0.id"),
        ((Stage("x", " ", 10, OPEN), *ENTERPRISE_STAGES[2:]), "stages.0.name"),
        ((Stage("x", "X", 101, OPEN), *ENTERPRISE_STAGES[2:]), "stages.0.probability"),
        (
            (Stage("x", "X", 10, OPEN), Stage("w", "W", 90, WON), ENTERPRISE_STAGES[3]),
            "stages.1.probability",
        ),
    ],
    ids=[
        "no won stage",
        "no lost stage",
        "no open stage",
        "two won stages",
        "a duplicate stage id",
        "an id that is not a slug",
        "an empty stage name",
        "a probability over 100",
        "a won stage below 100",
    ],
)
def test_a_pipeline_cannot_be_defined_with_invalid_stages(
    stages: tuple[Stage, ...], field: str
) -> None:
    with pytest.raises(InvalidValue) as refused:
        Pipeline.define("enterprise", "Enterprise", stages, on_day(0))

    assert refused.value.field == field


@pytest.mark.parametrize("pipeline_id", ["", "Enterprise", "big deals", "-x", "x" * 101])
def test_a_pipeline_id_is_a_slug(pipeline_id: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        Pipeline.define(pipeline_id, "Enterprise", ENTERPRISE_STAGES, on_day(0))

    assert refused.value.field == "id"


# --- renaming ------------------------------------------------------------------------------


def test_a_pipeline_is_renamed() -> None:
    pipeline = an_enterprise_pipeline()

    pipeline.rename("Big accounts", on_day(1))

    renamed = only_event(pipeline)
    assert isinstance(renamed, Pipeline.PipelineRenamed)
    assert renamed.name == "Big accounts"
    assert pipeline.definition.name == "Big accounts"


def test_renaming_a_pipeline_to_its_own_name_is_refused() -> None:
    with pytest.raises(RuleBroken, match="already named"):
        an_enterprise_pipeline().rename("Enterprise", on_day(1))


def test_a_pipeline_cannot_be_renamed_before_its_previous_event() -> None:
    with pytest.raises(RuleBroken, match="before this record's previous event"):
        an_enterprise_pipeline().rename("Big accounts", at(day(0) - timedelta(seconds=1)))


# --- adding stages -------------------------------------------------------------------------


def test_a_stage_is_added_after_the_last_open_stage_by_default() -> None:
    pipeline = an_enterprise_pipeline()

    pipeline.add_stage(Stage("legal", "Legal review", 60, OPEN), None, on_day(1))

    added = only_event(pipeline)
    assert isinstance(added, Pipeline.StageAdded)
    assert (added.stage_id, added.name, added.probability, added.kind, added.position) == (
        "legal",
        "Legal review",
        60,
        "open",
        2,
    )
    assert stage_ids(pipeline) == ["discovery", "pilot", "legal", "signed", "dropped"]


def test_a_stage_is_added_at_the_position_given() -> None:
    pipeline = an_enterprise_pipeline()

    pipeline.add_stage(Stage("intro", "Intro", 1, OPEN), 0, on_day(1))

    assert stage_ids(pipeline) == ["intro", "discovery", "pilot", "signed", "dropped"]
    assert pipeline.definition.first_open_stage.id == "intro"


def test_a_stage_with_an_id_the_pipeline_has_is_refused() -> None:
    with pytest.raises(RuleBroken, match="already has a stage 'pilot'"):
        an_enterprise_pipeline().add_stage(Stage("pilot", "Pilot 2", 50, OPEN), None, on_day(1))


def test_the_id_of_a_removed_stage_is_not_used_again() -> None:
    pipeline = an_enterprise_pipeline()
    pipeline.remove_stage("pilot", None, [], on_day(1))
    recorded(pipeline)

    with pytest.raises(RuleBroken, match="removed stage"):
        pipeline.add_stage(Stage("pilot", "Pilot", 40, OPEN), None, on_day(2))


@pytest.mark.parametrize("kind", [WON, LOST])
def test_a_second_closing_stage_cannot_be_added(kind: StageKind) -> None:
    with pytest.raises(RuleBroken, match="exactly one won and one lost"):
        an_enterprise_pipeline().add_stage(Stage("extra", "Extra", 0, kind), None, on_day(1))


@pytest.mark.parametrize("position", [-1, 5])
def test_a_stage_cannot_be_added_beyond_the_ends(position: int) -> None:
    with pytest.raises(InvalidValue) as refused:
        an_enterprise_pipeline().add_stage(Stage("x", "X", 5, OPEN), position, on_day(1))

    assert refused.value.field == "position"


# --- changing stages -----------------------------------------------------------------------


def test_a_stage_is_renamed_and_repriced_in_two_events() -> None:
    pipeline = an_enterprise_pipeline()

    pipeline.change_stage("pilot", "Paid pilot", 45, on_day(1))

    renamed, repriced = pipeline.collect_events()
    assert isinstance(renamed, Pipeline.StageRenamed)
    assert (renamed.stage_id, renamed.name) == ("pilot", "Paid pilot")
    assert isinstance(repriced, Pipeline.StageProbabilityChanged)
    assert (repriced.stage_id, repriced.probability) == ("pilot", 45)
    assert pipeline.definition.stage("pilot") == Stage("pilot", "Paid pilot", 45, OPEN)


def test_only_the_changed_field_of_a_stage_is_recorded() -> None:
    pipeline = an_enterprise_pipeline()

    pipeline.change_stage("pilot", "Pilot", 45, on_day(1))

    assert isinstance(only_event(pipeline), Pipeline.StageProbabilityChanged)


def test_a_stage_change_that_changes_nothing_is_refused() -> None:
    with pytest.raises(RuleBroken, match="already has this name and probability"):
        an_enterprise_pipeline().change_stage("pilot", "Pilot", 40, on_day(1))


def test_a_closing_stages_probability_does_not_change() -> None:
    with pytest.raises(RuleBroken, match="stays 100"):
        an_enterprise_pipeline().change_stage("signed", None, 90, on_day(1))


def test_a_closing_stage_can_be_renamed() -> None:
    pipeline = an_enterprise_pipeline()

    pipeline.change_stage("signed", "Contract signed", None, on_day(1))

    assert pipeline.definition.stage_of_kind(WON).name == "Contract signed"


def test_changing_an_unknown_stage_names_the_stage() -> None:
    with pytest.raises(InvalidValue) as refused:
        an_enterprise_pipeline().change_stage("legal", "Legal", None, on_day(1))

    assert refused.value.field == "stage_id"


# --- reordering ----------------------------------------------------------------------------


def test_stages_are_reordered() -> None:
    pipeline = an_enterprise_pipeline()

    pipeline.reorder(["pilot", "discovery", "signed", "dropped"], on_day(1))

    reordered = only_event(pipeline)
    assert isinstance(reordered, Pipeline.StagesReordered)
    assert reordered.stage_ids == ["pilot", "discovery", "signed", "dropped"]
    assert pipeline.definition.first_open_stage.id == "pilot"


@pytest.mark.parametrize(
    "order",
    [
        ["pilot", "discovery", "signed"],
        ["pilot", "discovery", "signed", "dropped", "legal"],
        ["pilot", "pilot", "signed", "dropped"],
    ],
    ids=["a stage left out", "an unknown stage", "a stage twice"],
)
def test_a_reorder_names_every_stage_once(order: list[str]) -> None:
    with pytest.raises(InvalidValue) as refused:
        an_enterprise_pipeline().reorder(order, on_day(1))

    assert refused.value.field == "stage_ids"


def test_a_reorder_to_the_same_order_is_refused() -> None:
    with pytest.raises(RuleBroken, match="already in this order"):
        an_enterprise_pipeline().reorder(["discovery", "pilot", "signed", "dropped"], on_day(1))


# --- removing stages -----------------------------------------------------------------------


def test_an_empty_stage_is_removed_without_a_target() -> None:
    pipeline = an_enterprise_pipeline()

    pipeline.remove_stage("pilot", None, [], on_day(1))

    removed = only_event(pipeline)
    assert isinstance(removed, Pipeline.StageRemoved)
    assert (removed.stage_id, removed.open_deals_moved_to, removed.moved_deal_ids) == (
        "pilot",
        None,
        [],
    )
    assert stage_ids(pipeline) == ["discovery", "signed", "dropped"]


def test_a_stage_with_open_deals_is_removed_with_their_target_recorded() -> None:
    pipeline = an_enterprise_pipeline()
    deal_ids = [uuid4(), uuid4()]

    pipeline.remove_stage("pilot", "discovery", deal_ids, on_day(1))

    removed = only_event(pipeline)
    assert (removed.open_deals_moved_to, removed.moved_deal_ids) == ("discovery", deal_ids)


def test_a_stage_with_open_deals_is_not_removed_without_a_target() -> None:
    with pytest.raises(RuleBroken, match="holds 1 open deal"):
        an_enterprise_pipeline().remove_stage("pilot", None, [uuid4()], on_day(1))


@pytest.mark.parametrize(
    "target", ["pilot", "signed", "legal"], ids=["itself", "closing", "unknown"]
)
def test_open_deals_move_only_to_another_open_stage(target: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        an_enterprise_pipeline().remove_stage("pilot", target, [uuid4()], on_day(1))

    assert refused.value.field == "move_open_deals_to"


@pytest.mark.parametrize("stage", ["signed", "dropped"])
def test_the_won_and_lost_stages_cannot_be_removed(stage: str) -> None:
    with pytest.raises(RuleBroken, match="exactly one won and one lost"):
        an_enterprise_pipeline().remove_stage(stage, None, [], on_day(1))


def test_the_last_open_stage_cannot_be_removed() -> None:
    pipeline = an_enterprise_pipeline()
    pipeline.remove_stage("pilot", None, [], on_day(1))
    recorded(pipeline)

    with pytest.raises(RuleBroken, match="only open stage"):
        pipeline.remove_stage("discovery", None, [], on_day(2))


# --- deals and their pipeline ------------------------------------------------------------


def test_a_deal_moves_to_the_first_open_stage_of_another_pipeline() -> None:
    deal = an_open_deal()
    enterprise = an_enterprise_pipeline().definition

    deal.move_to_pipeline(enterprise, None, None, on_day(1))

    moved = only_event(deal)
    assert isinstance(moved, Deal.DealMovedToPipeline)
    assert (moved.from_pipeline, moved.to_pipeline) == ("default", "enterprise")
    assert (moved.from_stage, moved.to_stage, moved.probability) == ("lead", "discovery", 5)
    assert (deal.pipeline_id, deal.stage) == ("enterprise", "discovery")


def test_a_deal_moves_to_the_open_stage_given_with_the_probability_given() -> None:
    deal = an_open_deal()

    deal.move_to_pipeline(an_enterprise_pipeline().definition, "pilot", 55, on_day(1))

    moved = only_event(deal)
    assert (moved.to_stage, moved.probability) == ("pilot", 55)


def test_a_moved_deal_is_won_in_its_new_pipelines_won_stage() -> None:
    deal = an_open_deal()
    enterprise = an_enterprise_pipeline().definition
    deal.move_to_pipeline(enterprise, None, None, on_day(1))

    deal.win(on_day(2), pipeline=enterprise)

    won = deal.collect_events()[-1]
    assert isinstance(won, Deal.DealWon)
    assert won.stage == "signed"
    assert deal.status is DealStatus.WON


def test_a_moved_deal_replays_into_its_new_pipeline() -> None:
    deal = Deal.open(
        name="Website redesign",
        client_id=CLIENT,
        value=Decimal("1000"),
        currency="EUR",
        expected_close_date=date(2024, 6, 30),
        context=on_day(0),
    )
    deal.move_to_pipeline(an_enterprise_pipeline().definition, "pilot", None, on_day(1))

    copy = replayed(Deal, deal.collect_events())

    assert (copy.pipeline_id, copy.stage, copy.last_open_stage) == ("enterprise", "pilot", "pilot")


def test_a_deal_is_not_moved_to_its_own_pipeline() -> None:
    with pytest.raises(RuleBroken, match="already in pipeline default"):
        an_open_deal().move_to_pipeline(DEFAULT_PIPELINE, None, None, on_day(1))


def test_a_closed_deal_is_not_moved_to_another_pipeline() -> None:
    deal = an_open_deal()
    deal.win(on_day(1))
    recorded(deal)

    with pytest.raises(RuleBroken, match="is won and cannot move to another pipeline"):
        deal.move_to_pipeline(an_enterprise_pipeline().definition, None, None, on_day(2))


def test_a_deal_is_moved_only_to_an_open_stage() -> None:
    enterprise = an_enterprise_pipeline().definition

    with pytest.raises(RuleBroken, match="closes the deal"):
        an_open_deal().move_to_pipeline(enterprise, "signed", None, on_day(1))
    with pytest.raises(InvalidValue) as refused:
        an_open_deal().move_to_pipeline(enterprise, "legal", None, on_day(1))
    assert refused.value.field == "stage"


def test_a_deal_whose_last_open_stage_was_removed_reopens_in_the_first_open_stage() -> None:
    pipeline = an_enterprise_pipeline()
    deal = an_open_deal(pipeline.definition)
    deal.change_stage("pilot", None, on_day(1), pipeline=pipeline.definition)
    deal.lose("Budget", None, on_day(2), pipeline=pipeline.definition)
    pipeline.remove_stage("pilot", None, [], on_day(3))
    recorded(deal)

    deal.reopen(None, on_day(4), pipeline=pipeline.definition)

    assert (only_event(deal).stage, deal.stage) == ("discovery", "discovery")
