"""A deal command reads its deal and the organization's pipelines in one query. Two
applications on one store stand for two web processes: what one saves, the other's next
command decides on — the pipelines read beside a deal are hints, never a cache."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from aggregates.deal import Deal
from aggregates.errors import InvalidValue
from aggregates.pipeline import DEFAULT_PIPELINE_ID, Pipeline
from commands import models
from commands.administration import Administration
from commands.pipelines import PipelineCommands
from commands.service import CommandMeta, CrmApplication
from crm.settings import Settings

ORGANIZATION = UUID("0f0f0f0f-0000-4000-8000-000000000001")
ADMIN = "admin-1"


def meta() -> CommandMeta:
    return CommandMeta(organization_id=ORGANIZATION, actor_id=ADMIN)


@pytest.fixture
def two_processes(settings: Settings) -> Iterator[tuple[CrmApplication, CrmApplication]]:
    first = CrmApplication(settings.location())
    # The second removes only stages it has emptied: no read models needed to find their deals.
    second = CrmApplication(settings.location(), open_deals_in_stage=lambda *_: [])
    try:
        Administration(first).create_organization(
            models.CreateOrganization(name="Acme", admin_user_id=ADMIN), meta()
        )
        yield first, second
    finally:
        first.close()
        second.close()


def open_deal(app: CrmApplication, client_id: UUID, pipeline_id: str = DEFAULT_PIPELINE_ID) -> UUID:
    accepted = app.open_deal(
        models.OpenDeal(
            name="Deal",
            client_id=client_id,
            value=Decimal("1000"),
            currency="EUR",
            expected_close_date=date(2027, 3, 31),
            pipeline_id=pipeline_id,
        ),
        meta(),
    )
    return accepted.record_id


def register_client(app: CrmApplication) -> UUID:
    return app.register_client(models.RegisterClient(name="Client"), meta()).record_id


def test_records_read_together_come_back_in_version_order_and_unknown_ids_are_left_out(
    two_processes: tuple[CrmApplication, CrmApplication],
) -> None:
    app, _ = two_processes
    client_id = register_client(app)
    deals = [open_deal(app, client_id) for _ in range(2)]
    app.change_stage(deals[0], models.ChangeStage(stage="qualified"), meta())
    app.win_deal(deals[0], meta())
    unknown = uuid4()

    read = app.select_events_of([*deals, client_id, unknown])

    assert set(read) == {*deals, client_id}
    for record_id, events in read.items():
        one_by_one = app.recorder.select_events(record_id)
        assert [(e.originator_version, e.topic) for e in events] == [
            (e.originator_version, e.topic) for e in one_by_one
        ]
    assert [e.originator_version for e in read[deals[0]]] == [1, 2, 3]


def test_given_a_stage_added_by_another_process_when_a_deal_moves_to_it_then_it_is_accepted(
    two_processes: tuple[CrmApplication, CrmApplication],
) -> None:
    first, second = two_processes
    deal_id = open_deal(first, register_client(first))
    first.change_stage(deal_id, models.ChangeStage(stage="qualified"), meta())
    assert first.pipelines_in_use.of(ORGANIZATION), "the first process now reads it with deals"

    PipelineCommands(second).add_stage(
        DEFAULT_PIPELINE_ID, models.AddStage(id="demo", name="Demo", probability=40), meta()
    )
    moved = first.change_stage(deal_id, models.ChangeStage(stage="demo"), meta())

    assert moved.version == 3
    assert first.load_together([deal_id]).get(Deal, deal_id).stage == "demo"  # type: ignore[union-attr]


def test_given_a_stage_removed_by_another_process_when_a_deal_moves_to_it_then_it_is_refused(
    two_processes: tuple[CrmApplication, CrmApplication],
) -> None:
    first, second = two_processes
    pipelines = PipelineCommands(second)
    pipelines.add_stage(
        DEFAULT_PIPELINE_ID, models.AddStage(id="demo", name="Demo", probability=40), meta()
    )
    deal_id = open_deal(first, register_client(first))
    first.change_stage(deal_id, models.ChangeStage(stage="demo"), meta())
    first.change_stage(deal_id, models.ChangeStage(stage="qualified"), meta())

    pipelines.remove_stage(DEFAULT_PIPELINE_ID, "demo", models.RemoveStage(), meta())

    with pytest.raises(InvalidValue, match="no stage 'demo'"):
        first.change_stage(deal_id, models.ChangeStage(stage="demo"), meta())


def test_a_deal_in_a_pipeline_not_read_lately_is_decided_on_that_pipeline(
    two_processes: tuple[CrmApplication, CrmApplication],
) -> None:
    first, second = two_processes
    client_id = register_client(first)
    first.change_stage(open_deal(first, client_id), models.ChangeStage(stage="qualified"), meta())
    PipelineCommands(second).define(models.DefinePipeline(id="renewals", name="Renewals"), meta())
    renewal = open_deal(second, client_id, pipeline_id="renewals")
    assert Pipeline.id_for(ORGANIZATION, "renewals") not in first.pipelines_in_use.of(ORGANIZATION)

    first.change_stage(renewal, models.ChangeStage(stage="proposal"), meta())

    assert first.pipelines_in_use.of(ORGANIZATION) == {
        Pipeline.id_for(ORGANIZATION, DEFAULT_PIPELINE_ID),
        Pipeline.id_for(ORGANIZATION, "renewals"),
    }
