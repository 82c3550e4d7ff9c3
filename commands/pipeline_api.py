"""Pipeline and exchange-rate commands (settings: ADMIN), and moving a deal between pipelines.

A pipeline is addressed by its id (``default``, ``enterprise``…), the ``pipeline_id`` deals
name; the answer's ``id`` is the pipeline record's id, its ``version`` the ``ETag``.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse
from pydantic_extra_types.currency_code import ISO4217

from aggregates.errors import InvalidValue
from commands import models
from commands.api import RESPONSES, Cmd, CommandResult
from commands.exchange_rates import ExchangeRateCommands
from commands.pipelines import PipelineCommands

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
PipelineIdPath = Annotated[str, Path(min_length=1, max_length=100, pattern=SLUG_PATTERN)]
StageIdPath = Annotated[str, Path(min_length=1, max_length=100, pattern=SLUG_PATTERN)]

pipelines = APIRouter(prefix="/pipelines", tags=["pipelines: commands"], responses=RESPONSES)
deals = APIRouter(prefix="/deals", tags=["deals: commands"], responses=RESPONSES)
exchange_rates = APIRouter(
    prefix="/exchange-rates", tags=["exchange rates: commands"], responses=RESPONSES
)


def pipeline_commands(req: Cmd) -> PipelineCommands:
    return PipelineCommands(req.app)


@pipelines.post("", status_code=201, response_model=CommandResult)
def define_pipeline(cmd: models.DefinePipeline, req: Cmd) -> JSONResponse:
    """Define a pipeline: its id, name and ordered stages (default: the default stages)."""
    response = req.run(lambda meta: pipeline_commands(req).define(cmd, meta), cmd)
    response.headers["Location"] = f"/pipelines/{cmd.id}"
    return response


@pipelines.patch("/{pipeline_id}", response_model=CommandResult)
def rename_pipeline(
    pipeline_id: PipelineIdPath, cmd: models.RenamePipeline, req: Cmd
) -> JSONResponse:
    """Rename a pipeline (its id stays)."""
    return req.run(lambda meta: pipeline_commands(req).rename(pipeline_id, cmd, meta), cmd)


@pipelines.post("/{pipeline_id}/stages", response_model=CommandResult)
def add_stage(pipeline_id: PipelineIdPath, cmd: models.AddStage, req: Cmd) -> JSONResponse:
    """Add an open stage at a position (default: after the last open stage)."""
    return req.run(lambda meta: pipeline_commands(req).add_stage(pipeline_id, cmd, meta), cmd)


@pipelines.patch("/{pipeline_id}/stages/{stage_id}", response_model=CommandResult)
def change_stage(
    pipeline_id: PipelineIdPath,
    stage_id: StageIdPath,
    cmd: models.ChangePipelineStage,
    req: Cmd,
) -> JSONResponse:
    """Rename a stage and/or change its default probability: the fields given."""
    return req.run(
        lambda meta: pipeline_commands(req).change_stage(pipeline_id, stage_id, cmd, meta), cmd
    )


@pipelines.put("/{pipeline_id}/stage-order", response_model=CommandResult)
def reorder_stages(
    pipeline_id: PipelineIdPath, cmd: models.ReorderStages, req: Cmd
) -> JSONResponse:
    """Put the pipeline's stages in a new order (name every stage once)."""
    return req.run(lambda meta: pipeline_commands(req).reorder_stages(pipeline_id, cmd, meta), cmd)


@pipelines.delete("/{pipeline_id}/stages/{stage_id}", response_model=CommandResult)
def remove_stage(
    pipeline_id: PipelineIdPath,
    stage_id: StageIdPath,
    req: Cmd,
    move_open_deals_to: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            pattern=SLUG_PATTERN,
            description="The open stage the removed stage's open deals move to (or in the body).",
        ),
    ] = None,
    cmd: Annotated[models.RemoveStage | None, Body()] = None,
) -> JSONResponse:
    """Remove an open stage; its open deals move to another open stage (StageChanged each)."""
    cmd = cmd or models.RemoveStage()
    if move_open_deals_to is not None:
        if cmd.move_open_deals_to not in (None, move_open_deals_to):
            raise InvalidValue(
                "move_open_deals_to", "The query and the body name different target stages."
            )
        cmd = cmd.model_copy(update={"move_open_deals_to": move_open_deals_to})
    removal = cmd
    return req.run(
        lambda meta: pipeline_commands(req).remove_stage(pipeline_id, stage_id, removal, meta),
        removal,
    )


@deals.post("/{deal_id}/pipeline", response_model=CommandResult)
def move_deal_to_pipeline(deal_id: UUID, cmd: models.MoveDealToPipeline, req: Cmd) -> JSONResponse:
    """Move an open deal to another pipeline: to a given open stage or its first one."""
    return req.run(lambda meta: req.app.move_deal_to_pipeline(deal_id, cmd, meta), cmd)


@exchange_rates.put("/{currency}", response_model=CommandResult)
def set_exchange_rate(
    currency: Annotated[ISO4217, Path(description="ISO 4217 code, e.g. USD")],
    cmd: models.SetExchangeRate,
    req: Cmd,
) -> JSONResponse:
    """Set what one unit of a currency is worth in the base currency, from a date on."""
    return req.run(
        lambda meta: ExchangeRateCommands(req.app).set_rate(str(currency), cmd, meta), cmd
    )


routers = (pipelines, deals, exchange_rates)
