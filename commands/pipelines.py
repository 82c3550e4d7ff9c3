"""Pipeline commands (ADMIN): define pipelines, rename them, add, change, reorder and remove
stages. Removing a stage moves its open deals in the same save, each with a StageChanged."""

from __future__ import annotations

from collections.abc import Callable

from aggregates.deal import Deal
from aggregates.errors import RuleBroken
from aggregates.organization import Organization
from aggregates.pipeline import DEFAULT_PIPELINE, DEFAULT_PIPELINE_ID, Pipeline, Stage, StageKind
from commands import models
from commands.errors import RecordNotFound, StageNotFound
from commands.service import Accepted, CommandMeta, CrmApplication, Decision


class PipelineCommands:
    """An organization's pipelines, decided and saved by the CRM application."""

    def __init__(self, app: CrmApplication) -> None:
        self.app = app

    def define(self, cmd: models.DefinePipeline, meta: CommandMeta) -> Accepted:
        def decide() -> Decision:
            if self.app.find(Organization, meta.organization_id) is None:
                raise RecordNotFound("organization", meta.organization_id)
            existing = self.app.find(Pipeline, Pipeline.id_for(meta.organization_id, cmd.id))
            if existing is not None or cmd.id == DEFAULT_PIPELINE_ID:
                raise RuleBroken(f"Pipeline {cmd.id} already exists.")
            stages = (
                DEFAULT_PIPELINE.stages
                if cmd.stages is None
                else tuple(stage.stage() for stage in cmd.stages)
            )
            pipeline = Pipeline.define(cmd.id, cmd.name, stages, meta.context())
            return Decision(pipeline, [pipeline], created=True)

        return self.app.execute(meta, decide)

    def rename(self, pipeline_id: str, cmd: models.RenamePipeline, meta: CommandMeta) -> Accepted:
        return self._on_pipeline(pipeline_id, meta, lambda p: p.rename(cmd.name, meta.context()))

    def add_stage(self, pipeline_id: str, cmd: models.AddStage, meta: CommandMeta) -> Accepted:
        stage = Stage(cmd.id, cmd.name, cmd.probability, StageKind.OPEN)
        return self._on_pipeline(
            pipeline_id, meta, lambda p: p.add_stage(stage, cmd.position, meta.context())
        )

    def change_stage(
        self,
        pipeline_id: str,
        stage_id: str,
        cmd: models.ChangePipelineStage,
        meta: CommandMeta,
    ) -> Accepted:
        def change(pipeline: Pipeline) -> None:
            check_stage_exists(pipeline, stage_id)
            pipeline.change_stage(stage_id, cmd.name, cmd.probability, meta.context())

        return self._on_pipeline(pipeline_id, meta, change)

    def reorder_stages(
        self, pipeline_id: str, cmd: models.ReorderStages, meta: CommandMeta
    ) -> Accepted:
        return self._on_pipeline(
            pipeline_id, meta, lambda p: p.reorder(cmd.stage_ids, meta.context())
        )

    def remove_stage(
        self, pipeline_id: str, stage_id: str, cmd: models.RemoveStage, meta: CommandMeta
    ) -> Accepted:
        """Remove a stage; its open deals move to ``move_open_deals_to`` in the same save."""

        def decide() -> Decision:
            pipeline, _ = self.app.load_pipeline(meta, pipeline_id)
            check_stage_exists(pipeline, stage_id)
            deals = self._open_deals_in(pipeline, stage_id, meta)
            context = meta.context()
            target = cmd.move_open_deals_to
            pipeline.remove_stage(stage_id, target, [deal.id for deal in deals], context)
            for deal in deals:
                assert target is not None  # the pipeline refuses removing a held stage without
                deal.change_stage(target, None, context, pipeline=pipeline.definition)
            return Decision(pipeline, [pipeline, *deals])

        return self.app.execute(meta, decide)

    def _open_deals_in(self, pipeline: Pipeline, stage_id: str, meta: CommandMeta) -> list[Deal]:
        """The open deals in the stage: found by the read models, checked on the deals."""
        ids = self.app.open_deals_in_stage(meta.organization_id, pipeline.pipeline_id, stage_id)
        deals = [self.app.find(Deal, deal_id) for deal_id in ids]
        return [
            deal
            for deal in deals
            if deal is not None
            and deal.organization_id == meta.organization_id
            and deal.is_open
            and not deal.archived
            and (deal.pipeline_id, deal.stage) == (pipeline.pipeline_id, stage_id)
        ]

    def _on_pipeline(
        self, pipeline_id: str, meta: CommandMeta, command: Callable[[Pipeline], None]
    ) -> Accepted:
        def decide() -> Decision:
            pipeline, _ = self.app.load_pipeline(meta, pipeline_id)
            command(pipeline)
            return Decision(pipeline, [pipeline])

        return self.app.execute(meta, decide)


def check_stage_exists(pipeline: Pipeline, stage_id: str) -> None:
    """A stage addressed by the path: 404 when the pipeline has no such stage."""
    if pipeline.definition.stage(stage_id) is None:
        raise StageNotFound(pipeline.pipeline_id, stage_id)
