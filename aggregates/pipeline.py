"""Pipelines: ordered stages, each with a default probability and a kind (open, won, lost)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


@dataclass(frozen=True)
class Pipeline:
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


DEFAULT_PIPELINE = Pipeline(
    id="default",
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

PIPELINES = {DEFAULT_PIPELINE.id: DEFAULT_PIPELINE}
