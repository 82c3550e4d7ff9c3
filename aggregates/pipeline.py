"""Pipelines: several per organization, each an ordered list of stages with a default
probability and a kind (open, won, lost).

A :class:`Pipeline` is a record like any other; deals name it by its ``pipeline_id`` (a slug
such as ``default``) and their decisions take its :class:`PipelineDefinition`, the plain value
the service passes in. The aggregate's id derives from (organization, pipeline id).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from aggregates.base import CrmAggregate
from aggregates.context import EventContext
from aggregates.errors import InvalidValue, RuleBroken

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")
DEFAULT_PIPELINE_ID = "default"
CLOSING_PROBABILITY = {"won": 100, "lost": 0}


class StageKind(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True)
class Stage:
    id: str
    name: str
    probability: int
    kind: StageKind

    def as_dict(self) -> dict[str, Any]:
        """The stage as an event or a read model carries it."""
        return {
            "id": self.id,
            "name": self.name,
            "probability": self.probability,
            "kind": self.kind.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stage:
        return cls(data["id"], data["name"], int(data["probability"]), StageKind(data["kind"]))


@dataclass(frozen=True)
class PipelineDefinition:
    """A pipeline as deals' decisions (and readers) see it: its id, name and ordered stages."""

    id: str
    name: str
    stages: tuple[Stage, ...]

    def stage(self, stage_id: str) -> Stage | None:
        return next((stage for stage in self.stages if stage.id == stage_id), None)

    @property
    def first_open_stage(self) -> Stage:
        return next(stage for stage in self.stages if stage.kind is StageKind.OPEN)

    def stage_of_kind(self, kind: StageKind) -> Stage:
        return next(stage for stage in self.stages if stage.kind is kind)

    def open_stage_ids(self) -> list[str]:
        return [stage.id for stage in self.stages if stage.kind is StageKind.OPEN]

    def position_of(self, stage_id: str) -> int:
        return next(n for n, stage in enumerate(self.stages) if stage.id == stage_id)

    # The transitions below are the apply steps of the pipeline's events, shared by the
    # aggregate and the read model so both fold an event the same way.

    def renamed(self, name: str) -> PipelineDefinition:
        return replace(self, name=name)

    def with_stage_added(self, stage: Stage, position: int) -> PipelineDefinition:
        stages = list(self.stages)
        stages.insert(position, stage)
        return replace(self, stages=tuple(stages))

    def with_stage_changed(
        self, stage_id: str, *, name: str | None = None, probability: int | None = None
    ) -> PipelineDefinition:
        return replace(
            self,
            stages=tuple(
                replace(
                    stage,
                    name=stage.name if name is None else name,
                    probability=stage.probability if probability is None else probability,
                )
                if stage.id == stage_id
                else stage
                for stage in self.stages
            ),
        )

    def reordered(self, stage_ids: Sequence[str]) -> PipelineDefinition:
        by_id = {stage.id: stage for stage in self.stages}
        return replace(self, stages=tuple(by_id[stage_id] for stage_id in stage_ids))

    def without_stage(self, stage_id: str) -> PipelineDefinition:
        return replace(self, stages=tuple(s for s in self.stages if s.id != stage_id))


DEFAULT_PIPELINE = PipelineDefinition(
    id=DEFAULT_PIPELINE_ID,
    name="Sales",
    stages=(
        Stage("lead", "Lead", 10, StageKind.OPEN),
        Stage("qualified", "Qualified", 25, StageKind.OPEN),
        Stage("proposal", "Proposal", 50, StageKind.OPEN),
        Stage("negotiation", "Negotiation", 75, StageKind.OPEN),
        Stage("closed_won", "Closed Won", 100, StageKind.WON),
        Stage("closed_lost", "Closed Lost", 0, StageKind.LOST),
    ),
)

# The pipeline every organization starts with, by id: for readers that do not yet look up
# an organization's own pipelines.
PIPELINES = {DEFAULT_PIPELINE.id: DEFAULT_PIPELINE}


class Pipeline(CrmAggregate):
    """One pipeline of an organization: exactly one won and one lost stage, at least one open."""

    class PipelineDefined(CrmAggregate.Created):
        pipeline_id: str
        name: str
        stages: list[dict[str, Any]]

    class PipelineRenamed(CrmAggregate.Event):
        name: str

    class StageAdded(CrmAggregate.Event):
        stage_id: str
        name: str
        probability: int
        kind: str
        position: int

    class StageRenamed(CrmAggregate.Event):
        stage_id: str
        name: str

    class StageProbabilityChanged(CrmAggregate.Event):
        stage_id: str
        probability: int

    class StagesReordered(CrmAggregate.Event):
        stage_ids: list[str]

    class StageRemoved(CrmAggregate.Event):
        stage_id: str
        open_deals_moved_to: str | None
        moved_deal_ids: list[UUID]

    @staticmethod
    def create_id(pipeline_id: str, context: EventContext, **_: Any) -> UUID:
        return Pipeline.id_for(context.organization_id, pipeline_id)

    @staticmethod
    def id_for(organization_id: UUID, pipeline_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"monton-crm:pipeline:{organization_id}:{pipeline_id}")

    @classmethod
    def define(
        cls, pipeline_id: str, name: str, stages: Sequence[Stage], context: EventContext
    ) -> Pipeline:
        """A new pipeline with these stages, in this order."""
        check_slug("id", pipeline_id)
        check_name("name", name)
        check_stages(stages)
        return cls(
            pipeline_id=pipeline_id,
            name=name,
            stages=[stage.as_dict() for stage in stages],
            context=context,
        )

    @classmethod
    def default(cls, context: EventContext) -> Pipeline:
        """The default pipeline every organization has."""
        return cls.define(
            DEFAULT_PIPELINE.id, DEFAULT_PIPELINE.name, DEFAULT_PIPELINE.stages, context
        )

    @event(PipelineDefined)
    def __init__(
        self, pipeline_id: str, name: str, stages: list[dict[str, Any]], context: EventContext
    ) -> None:
        self.definition = PipelineDefinition(
            pipeline_id, name, tuple(Stage.from_dict(stage) for stage in stages)
        )
        self.removed_stage_ids: list[str] = []

    @property
    def pipeline_id(self) -> str:
        return self.definition.id

    def rename(self, name: str, context: EventContext) -> None:
        self.check_in_sequence(context)
        check_name("name", name)
        if name == self.definition.name:
            raise RuleBroken(f"Pipeline {self.pipeline_id} is already named {name!r}.")
        self._renamed(name=name, context=context)

    def add_stage(self, stage: Stage, position: int | None, context: EventContext) -> None:
        """Add an open stage at ``position`` (0 is first); default: after the last open one."""
        self.check_in_sequence(context)
        check_slug("id", stage.id)
        check_name("name", stage.name)
        check_probability("probability", stage.probability)
        if stage.kind is not StageKind.OPEN:
            raise RuleBroken(
                f"Pipeline {self.pipeline_id} already has its {stage.kind.value} stage; "
                "a pipeline has exactly one won and one lost stage."
            )
        if self.definition.stage(stage.id) is not None:
            raise RuleBroken(f"Pipeline {self.pipeline_id} already has a stage {stage.id!r}.")
        if stage.id in self.removed_stage_ids:
            raise RuleBroken(
                f"Stage id {stage.id!r} belonged to a removed stage of pipeline "
                f"{self.pipeline_id}; choose another id so its history stays unambiguous."
            )
        last = len(self.definition.stages)
        if position is None:
            open_ids = self.definition.open_stage_ids()
            position = self.definition.position_of(open_ids[-1]) + 1
        elif not 0 <= position <= last:
            raise InvalidValue("position", f"A position is a whole number from 0 to {last}.")
        self._stage_added(
            stage_id=stage.id,
            name=stage.name,
            probability=stage.probability,
            kind=stage.kind.value,
            position=position,
            context=context,
        )

    def change_stage(
        self, stage_id: str, name: str | None, probability: int | None, context: EventContext
    ) -> None:
        """Rename a stage and/or change its default probability: the ones given."""
        self.check_in_sequence(context)
        stage = self._stage(stage_id)
        if name is None and probability is None:
            raise InvalidValue("body", "Name at least one field to change.")
        if name is not None:
            check_name("name", name)
        if probability is not None:
            check_probability("probability", probability)
            if stage.kind is not StageKind.OPEN and probability != stage.probability:
                raise RuleBroken(
                    f"Stage {stage_id!r} is the {stage.kind.value} stage; its probability "
                    f"stays {stage.probability}."
                )
        renames = name is not None and name != stage.name
        reprices = probability is not None and probability != stage.probability
        if not (renames or reprices):
            raise RuleBroken(f"Stage {stage_id!r} already has this name and probability.")
        if renames:
            assert name is not None
            self._stage_renamed(stage_id=stage_id, name=name, context=context)
        if reprices:
            assert probability is not None
            self._stage_probability_changed(
                stage_id=stage_id, probability=probability, context=context
            )

    def reorder(self, stage_ids: list[str], context: EventContext) -> None:
        """Put every stage in the order given."""
        self.check_in_sequence(context)
        current = [stage.id for stage in self.definition.stages]
        if sorted(stage_ids) != sorted(current):
            raise InvalidValue(
                "stage_ids",
                f"Name every stage of pipeline {self.pipeline_id} once: {', '.join(current)}.",
            )
        if stage_ids == current:
            raise RuleBroken(
                f"The stages of pipeline {self.pipeline_id} are already in this order."
            )
        self._stages_reordered(stage_ids=list(stage_ids), context=context)

    def remove_stage(
        self,
        stage_id: str,
        move_open_deals_to: str | None,
        open_deal_ids: list[UUID],
        context: EventContext,
    ) -> None:
        """Remove an open stage; its open deals (found by the caller) move to another one."""
        self.check_in_sequence(context)
        stage = self._stage(stage_id)
        if stage.kind is not StageKind.OPEN:
            raise RuleBroken(
                f"Stage {stage_id!r} is the {stage.kind.value} stage of pipeline "
                f"{self.pipeline_id}; a pipeline keeps exactly one won and one lost stage."
            )
        if self.definition.open_stage_ids() == [stage_id]:
            raise RuleBroken(
                f"Stage {stage_id!r} is the only open stage of pipeline {self.pipeline_id}; "
                "add another open stage first."
            )
        if move_open_deals_to is not None:
            target = self.definition.stage(move_open_deals_to)
            if target is None or target.kind is not StageKind.OPEN or target.id == stage_id:
                raise InvalidValue(
                    "move_open_deals_to",
                    f"{move_open_deals_to!r} is not another open stage of pipeline "
                    f"{self.pipeline_id}.",
                )
        elif open_deal_ids:
            raise RuleBroken(
                f"Stage {stage_id!r} holds {len(open_deal_ids)} open deal(s); name the open "
                "stage to move them to (move_open_deals_to)."
            )
        self._stage_removed(
            stage_id=stage_id,
            open_deals_moved_to=move_open_deals_to,
            moved_deal_ids=list(open_deal_ids),
            context=context,
        )

    def _stage(self, stage_id: str) -> Stage:
        stage = self.definition.stage(stage_id)
        if stage is None:
            raise InvalidValue(
                "stage_id", f"Pipeline {self.pipeline_id} has no stage {stage_id!r}."
            )
        return stage

    @event(PipelineRenamed)
    def _renamed(self, name: str, context: EventContext) -> None:
        self.definition = self.definition.renamed(name)

    @event(StageAdded)
    def _stage_added(
        self,
        stage_id: str,
        name: str,
        probability: int,
        kind: str,
        position: int,
        context: EventContext,
    ) -> None:
        stage = Stage(stage_id, name, probability, StageKind(kind))
        self.definition = self.definition.with_stage_added(stage, position)

    @event(StageRenamed)
    def _stage_renamed(self, stage_id: str, name: str, context: EventContext) -> None:
        self.definition = self.definition.with_stage_changed(stage_id, name=name)

    @event(StageProbabilityChanged)
    def _stage_probability_changed(
        self, stage_id: str, probability: int, context: EventContext
    ) -> None:
        self.definition = self.definition.with_stage_changed(stage_id, probability=probability)

    @event(StagesReordered)
    def _stages_reordered(self, stage_ids: list[str], context: EventContext) -> None:
        self.definition = self.definition.reordered(stage_ids)

    @event(StageRemoved)
    def _stage_removed(
        self,
        stage_id: str,
        open_deals_moved_to: str | None,
        moved_deal_ids: list[UUID],
        context: EventContext,
    ) -> None:
        self.definition = self.definition.without_stage(stage_id)
        self.removed_stage_ids = [*self.removed_stage_ids, stage_id]


def check_slug(field: str, value: str) -> None:
    if not SLUG.fullmatch(value):
        raise InvalidValue(
            field,
            f"{value!r} is not an id: 1 to 100 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit.",
        )


def check_name(field: str, value: str) -> None:
    if not value.strip():
        raise InvalidValue(field, "A name cannot be empty.")


def check_probability(field: str, value: int) -> None:
    if not 0 <= value <= 100:
        raise InvalidValue(field, "A probability is a whole number from 0 to 100.")


def check_stages(stages: Sequence[Stage]) -> None:
    """Exactly one won and one lost stage, at least one open stage, unique valid ids."""
    seen: set[str] = set()
    for n, stage in enumerate(stages):
        check_slug(f"stages.{n}.id", stage.id)
        check_name(f"stages.{n}.name", stage.name)
        check_probability(f"stages.{n}.probability", stage.probability)
        if stage.id in seen:
            raise InvalidValue(f"stages.{n}.id", f"Stage id {stage.id!r} appears twice.")
        seen.add(stage.id)
        closing = CLOSING_PROBABILITY.get(stage.kind.value)
        if closing is not None and stage.probability != closing:
            raise InvalidValue(
                f"stages.{n}.probability",
                f"The {stage.kind.value} stage's probability is {closing}.",
            )
    kinds = [stage.kind for stage in stages]
    for kind in (StageKind.WON, StageKind.LOST):
        if kinds.count(kind) != 1:
            raise InvalidValue("stages", f"A pipeline has exactly one {kind.value} stage.")
    if StageKind.OPEN not in kinds:
        raise InvalidValue("stages", "A pipeline has at least one open stage.")
