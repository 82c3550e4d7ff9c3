"""Deal: a sales opportunity moving through a pipeline until it is won or lost."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from aggregates.base import CrmAggregate
from aggregates.context import EventContext
from aggregates.errors import InvalidValue, RuleBroken
from aggregates.pipeline import DEFAULT_PIPELINE, PipelineDefinition, StageKind

CURRENCY_CODE = re.compile(r"[A-Z]{3}")
MAX_DEAL_VALUE = Decimal("1e11")  # keeps value × probability exact in 64-bit read models
DETAIL_FIELDS = frozenset({"name", "source", "competitor", "notes"})


class DealStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class Deal(CrmAggregate):
    """A sales opportunity. Closed deals keep their stage and the value they closed at."""

    class DealOpened(CrmAggregate.Created):
        name: str
        client_id: UUID
        value: Decimal
        currency: str
        expected_close_date: date
        pipeline_id: str
        stage: str
        probability: int
        owner_id: str | None
        source: str | None
        competitor: str | None
        notes: str | None
        stakeholder_contact_ids: list[UUID]
        stakeholder_user_ids: list[str]

    class StageChanged(CrmAggregate.Event):
        from_stage: str
        to_stage: str
        probability: int

    class DealValueChanged(CrmAggregate.Event):
        value: Decimal
        currency: str

    class ExpectedCloseDateChanged(CrmAggregate.Event):
        expected_close_date: date

    class ProbabilityChanged(CrmAggregate.Event):
        probability: int

    class DealReassigned(CrmAggregate.Event):
        owner_id: str | None

    class StakeholdersChanged(CrmAggregate.Event):
        contact_ids: list[UUID]
        user_ids: list[str]

    class DealDetailsChanged(CrmAggregate.Event):
        changes: dict[str, str | None]

    class DealWon(CrmAggregate.Event):
        stage: str
        value: Decimal
        currency: str

    class DealLost(CrmAggregate.Event):
        stage: str
        reason: str
        competitor: str | None

    class DealReopened(CrmAggregate.Event):
        stage: str
        probability: int

    class DealMovedToPipeline(CrmAggregate.Event):
        from_pipeline: str
        to_pipeline: str
        from_stage: str
        to_stage: str
        probability: int

    class DealArchived(CrmAggregate.Event):
        pass

    @event(DealOpened)
    def __init__(
        self,
        name: str,
        client_id: UUID,
        value: Decimal,
        currency: str,
        expected_close_date: date,
        pipeline_id: str,
        stage: str,
        probability: int,
        owner_id: str | None,
        source: str | None,
        competitor: str | None,
        notes: str | None,
        stakeholder_contact_ids: list[UUID],
        stakeholder_user_ids: list[str],
        context: EventContext,
    ) -> None:
        self.value = value
        self.currency = currency
        self.pipeline_id = pipeline_id
        self.stage = stage
        self.owner_id = owner_id
        self.status = DealStatus.OPEN
        self.last_open_stage = stage

    @classmethod
    def open(
        cls,
        *,
        name: str,
        client_id: UUID,
        value: Decimal,
        currency: str,
        expected_close_date: date,
        context: EventContext,
        pipeline: PipelineDefinition = DEFAULT_PIPELINE,
        probability: int | None = None,
        owner_id: str | None = None,
        source: str | None = None,
        competitor: str | None = None,
        notes: str | None = None,
        stakeholder_contact_ids: list[UUID] | None = None,
        stakeholder_user_ids: list[str] | None = None,
    ) -> Deal:
        """Open a deal in the first open stage of its pipeline (the service's definition of it)."""
        check_money(value, currency)
        first = pipeline.first_open_stage
        return cls(
            name=name,
            client_id=client_id,
            value=value,
            currency=currency,
            expected_close_date=expected_close_date,
            pipeline_id=pipeline.id,
            stage=first.id,
            probability=first.probability
            if probability is None
            else checked_probability(probability),
            owner_id=owner_id,
            source=source,
            competitor=competitor,
            notes=notes,
            stakeholder_contact_ids=list(stakeholder_contact_ids or []),
            stakeholder_user_ids=list(stakeholder_user_ids or []),
            context=context,
        )

    @property
    def is_open(self) -> bool:
        return self.status is DealStatus.OPEN

    def change_stage(
        self,
        to_stage: str,
        probability: int | None,
        context: EventContext,
        *,
        pipeline: PipelineDefinition = DEFAULT_PIPELINE,
    ) -> None:
        self._check_open(context, "change stage")
        self._check_own(pipeline)
        stage = pipeline.stage(to_stage)
        if stage is None:
            raise InvalidValue("stage", f"Pipeline {self.pipeline_id} has no stage {to_stage!r}.")
        if stage.kind is not StageKind.OPEN:
            raise RuleBroken(f"Stage {to_stage!r} closes the deal; win or lose the deal instead.")
        if stage.id == self.stage:
            raise RuleBroken(f"Deal {self.id} is already in stage {to_stage!r}.")
        self._stage_changed(
            from_stage=self.stage,
            to_stage=stage.id,
            probability=stage.probability
            if probability is None
            else checked_probability(probability),
            context=context,
        )

    def change_value(self, value: Decimal, currency: str, context: EventContext) -> None:
        self._check_open(context, "change its value")
        check_money(value, currency)
        self._value_changed(value=value, currency=currency, context=context)

    def change_expected_close_date(self, expected_close_date: date, context: EventContext) -> None:
        self._check_open(context, "change its expected close date")
        self._expected_close_date_changed(expected_close_date=expected_close_date, context=context)

    def change_probability(self, probability: int, context: EventContext) -> None:
        self._check_open(context, "change its probability")
        self._probability_changed(probability=checked_probability(probability), context=context)

    def reassign(self, owner_id: str | None, context: EventContext) -> None:
        self._check_changeable(context)
        if owner_id == self.owner_id:
            raise RuleBroken(f"Deal {self.id} is already owned by {owner_id}.")
        self._reassigned(owner_id=owner_id, context=context)

    def change_stakeholders(
        self, contact_ids: list[UUID], user_ids: list[str], context: EventContext
    ) -> None:
        self._check_changeable(context)
        self._stakeholders_changed(contact_ids=contact_ids, user_ids=user_ids, context=context)

    def change_details(self, changes: dict[str, str | None], context: EventContext) -> None:
        """Change name, source, competitor or notes: the ones given."""
        self._check_changeable(context)
        if not changes:
            raise InvalidValue("body", "Name at least one field to change.")
        for field in changes.keys() - DETAIL_FIELDS:
            raise InvalidValue(field, f"{field} is not a detail of a deal.")
        if "name" in changes and not changes["name"]:
            raise InvalidValue("name", "A deal needs a name.")
        self._details_changed(changes=changes, context=context)

    def win(
        self, context: EventContext, *, pipeline: PipelineDefinition = DEFAULT_PIPELINE
    ) -> None:
        self._check_open(context, "be won")
        self._check_own(pipeline)
        self._won(
            stage=pipeline.stage_of_kind(StageKind.WON).id,
            value=self.value,
            currency=self.currency,
            context=context,
        )

    def lose(
        self,
        reason: str,
        competitor: str | None,
        context: EventContext,
        *,
        pipeline: PipelineDefinition = DEFAULT_PIPELINE,
    ) -> None:
        self._check_open(context, "be lost")
        self._check_own(pipeline)
        self._lost(
            stage=pipeline.stage_of_kind(StageKind.LOST).id,
            reason=reason,
            competitor=competitor,
            context=context,
        )

    def reopen(
        self,
        stage: str | None,
        context: EventContext,
        *,
        pipeline: PipelineDefinition = DEFAULT_PIPELINE,
    ) -> None:
        """Reopen in ``stage``; default: the last open stage, or the first if it was removed."""
        self._check_changeable(context)
        self._check_own(pipeline)
        if self.is_open:
            raise RuleBroken(f"Deal {self.id} is open; only a won or lost deal can be reopened.")
        target = (
            pipeline.stage(stage)
            if stage is not None
            else pipeline.stage(self.last_open_stage) or pipeline.first_open_stage
        )
        if target is None or target.kind is not StageKind.OPEN:
            raise InvalidValue("stage", f"{stage!r} is not an open stage of {self.pipeline_id}.")
        self._reopened(stage=target.id, probability=target.probability, context=context)

    def move_to_pipeline(
        self,
        pipeline: PipelineDefinition,
        stage: str | None,
        probability: int | None,
        context: EventContext,
    ) -> None:
        """Move an open deal to an open stage of another pipeline (default: its first)."""
        self._check_open(context, "move to another pipeline")
        if pipeline.id == self.pipeline_id:
            raise RuleBroken(f"Deal {self.id} is already in pipeline {pipeline.id}.")
        target = pipeline.first_open_stage if stage is None else pipeline.stage(stage)
        if target is None:
            raise InvalidValue("stage", f"Pipeline {pipeline.id} has no stage {stage!r}.")
        if target.kind is not StageKind.OPEN:
            raise RuleBroken(
                f"Stage {target.id!r} closes the deal; move it to an open stage, then win or "
                "lose it."
            )
        self._moved_to_pipeline(
            from_pipeline=self.pipeline_id,
            to_pipeline=pipeline.id,
            from_stage=self.stage,
            to_stage=target.id,
            probability=target.probability
            if probability is None
            else checked_probability(probability),
            context=context,
        )

    def archive(self, context: EventContext) -> None:
        self._check_changeable(context)
        self._archived(context=context)

    def _check_own(self, pipeline: PipelineDefinition) -> None:
        if pipeline.id != self.pipeline_id:
            raise RuleBroken(
                f"Deal {self.id} is in pipeline {self.pipeline_id}, not {pipeline.id}."
            )

    def _check_changeable(self, context: EventContext) -> None:
        self.check_not_archived()
        self.check_in_sequence(context)

    def _check_open(self, context: EventContext, doing: str) -> None:
        self._check_changeable(context)
        if not self.is_open:
            raise RuleBroken(f"Deal {self.id} is {self.status.value} and cannot {doing}.")

    @event(StageChanged)
    def _stage_changed(
        self, from_stage: str, to_stage: str, probability: int, context: EventContext
    ) -> None:
        self.stage = to_stage
        self.last_open_stage = to_stage

    @event(DealValueChanged)
    def _value_changed(self, value: Decimal, currency: str, context: EventContext) -> None:
        self.value = value
        self.currency = currency

    @event(ExpectedCloseDateChanged)
    def _expected_close_date_changed(
        self, expected_close_date: date, context: EventContext
    ) -> None:
        pass  # no rule depends on it

    @event(ProbabilityChanged)
    def _probability_changed(self, probability: int, context: EventContext) -> None:
        pass  # no rule depends on it

    @event(DealReassigned)
    def _reassigned(self, owner_id: str | None, context: EventContext) -> None:
        self.owner_id = owner_id

    @event(StakeholdersChanged)
    def _stakeholders_changed(
        self, contact_ids: list[UUID], user_ids: list[str], context: EventContext
    ) -> None:
        pass  # no decision depends on stakeholders; the read model keeps them

    @event(DealDetailsChanged)
    def _details_changed(self, changes: dict[str, str | None], context: EventContext) -> None:
        pass  # no rule depends on them; the read model merges the changes

    @event(DealWon)
    def _won(self, stage: str, value: Decimal, currency: str, context: EventContext) -> None:
        self.status = DealStatus.WON
        self.stage = stage

    @event(DealLost)
    def _lost(self, stage: str, reason: str, competitor: str | None, context: EventContext) -> None:
        self.status = DealStatus.LOST
        self.stage = stage

    @event(DealReopened)
    def _reopened(self, stage: str, probability: int, context: EventContext) -> None:
        self.status = DealStatus.OPEN
        self.stage = stage
        self.last_open_stage = stage

    @event(DealMovedToPipeline)
    def _moved_to_pipeline(
        self,
        from_pipeline: str,
        to_pipeline: str,
        from_stage: str,
        to_stage: str,
        probability: int,
        context: EventContext,
    ) -> None:
        self.pipeline_id = to_pipeline
        self.stage = to_stage
        self.last_open_stage = to_stage

    @event(DealArchived)
    def _archived(self, context: EventContext) -> None:
        self.archived = True


def check_money(value: Decimal, currency: str) -> None:
    if not value.is_finite() or not 0 <= value <= MAX_DEAL_VALUE:
        raise InvalidValue("value", "A deal's value is a decimal number from 0 to 1e11.")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4 and value != value.quantize(Decimal("0.0001")):
        raise InvalidValue("value", "A deal's value has at most 4 decimal places.")
    if not CURRENCY_CODE.fullmatch(currency):
        raise InvalidValue("currency", f"{currency!r} is not an ISO 4217 currency code.")


def checked_probability(probability: int) -> int:
    if not 0 <= probability <= 100:
        raise InvalidValue("probability", "A probability is a whole number from 0 to 100.")
    return probability
