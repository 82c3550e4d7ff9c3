"""Read models of pipelines (one row each, its stages as JSON) and exchange rates (one row per
currency and effective date), their queries, and the open deals of a stage (from ``rm_deals``)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatchmethod
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from aggregates.deal import DealStatus
from aggregates.exchange_rates import ExchangeRates
from aggregates.pipeline import DEFAULT_PIPELINE, Pipeline, PipelineDefinition, Stage, StageKind
from event_store.read_model_store import ReadModelStore, SqlCursor
from projections.row_projection import RowDict, RowProjection, common_columns
from projections.units import micros

EXCHANGE_RATES_TABLE = "rm_exchange_rates"
EXCHANGE_RATE_COLUMNS = (
    "id",
    "organization_id",
    "base_currency",
    "currency",
    "effective_from",
    "rate_to_base",
    "set_at_us",
    "set_by",
    "version",
    "recorded_at_us",
)


class PipelinesProjection(RowProjection):
    table = "rm_pipelines"
    columns = (
        "id",
        "organization_id",
        "pipeline_id",
        "name",
        "stages",
        "defined_at_us",
        "version",
        "updated_at_us",
        "recorded_at_us",
    )
    json_columns = frozenset({"stages"})
    column_types: ClassVar[dict[str, str]] = {
        "defined_at_us": "BIGINT",
        "version": "INTEGER",
        "updated_at_us": "BIGINT",
        "recorded_at_us": "BIGINT",
    }
    indexes = (
        "CREATE UNIQUE INDEX IF NOT EXISTS rm_pipelines_by_org "
        "ON rm_pipelines (organization_id, pipeline_id)",
    )

    def handles(self, event: DomainEventProtocol[UUID]) -> bool:
        return isinstance(event, Pipeline.Event)

    def fold(self, row: RowDict | None, event: DomainEventProtocol[UUID]) -> RowDict | None:
        if isinstance(event, Pipeline.PipelineDefined):
            return {
                "id": str(event.originator_id),
                "organization_id": str(event.context.organization_id),
                "pipeline_id": event.pipeline_id,
                "name": event.name,
                "stages": list(event.stages),
                "defined_at_us": micros(event.context.occurred_at),
                **common_columns(event),
            }
        if row is None:
            return None
        definition = self.changed(event, definition_of(row))
        return {
            **row,
            "name": definition.name,
            "stages": [stage.as_dict() for stage in definition.stages],
            **common_columns(event),
        }

    # The same transitions the aggregate applies (see PipelineDefinition).

    @singledispatchmethod
    def changed(self, event: Any, definition: PipelineDefinition) -> PipelineDefinition:
        return definition

    @changed.register
    def _(
        self, event: Pipeline.PipelineRenamed, definition: PipelineDefinition
    ) -> PipelineDefinition:
        return definition.renamed(event.name)

    @changed.register
    def _(self, event: Pipeline.StageAdded, definition: PipelineDefinition) -> PipelineDefinition:
        stage = Stage(event.stage_id, event.name, event.probability, StageKind(event.kind))
        return definition.with_stage_added(stage, event.position)

    @changed.register
    def _(self, event: Pipeline.StageRenamed, definition: PipelineDefinition) -> PipelineDefinition:
        return definition.with_stage_changed(event.stage_id, name=event.name)

    @changed.register
    def _(
        self, event: Pipeline.StageProbabilityChanged, definition: PipelineDefinition
    ) -> PipelineDefinition:
        return definition.with_stage_changed(event.stage_id, probability=event.probability)

    @changed.register
    def _(
        self, event: Pipeline.StagesReordered, definition: PipelineDefinition
    ) -> PipelineDefinition:
        return definition.reordered(event.stage_ids)

    @changed.register
    def _(self, event: Pipeline.StageRemoved, definition: PipelineDefinition) -> PipelineDefinition:
        return definition.without_stage(event.stage_id)


def definition_of(row: RowDict) -> PipelineDefinition:
    """The pipeline a ``rm_pipelines`` row describes."""
    stages = tuple(Stage.from_dict(stage) for stage in row["stages"])
    return PipelineDefinition(row["pipeline_id"], row["name"], stages)


class ExchangeRatesProjection:
    """One row per (organization, base currency, currency, effective date): the latest rate
    set for it. A row keeps the version of the event that set it, so a redelivered older
    event changes nothing."""

    name = EXCHANGE_RATES_TABLE

    def schema(self) -> list[str]:
        return [
            f"CREATE TABLE IF NOT EXISTS {EXCHANGE_RATES_TABLE} ("
            "id TEXT PRIMARY KEY, organization_id TEXT NOT NULL, base_currency TEXT NOT NULL, "
            "currency TEXT NOT NULL, effective_from TEXT NOT NULL, rate_to_base TEXT NOT NULL, "
            "set_at_us BIGINT NOT NULL, set_by TEXT NOT NULL, version INTEGER NOT NULL, "
            "recorded_at_us BIGINT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS rm_exchange_rates_by_org ON {EXCHANGE_RATES_TABLE} "
            "(organization_id, currency, effective_from)",
        ]

    def receives(self, event: DomainEventProtocol[UUID]) -> bool:
        return isinstance(event, ExchangeRates.ExchangeRateSet)

    def process(self, cursor: SqlCursor, events: Sequence[DomainEventProtocol[UUID]]) -> None:
        latest: dict[str, list[Any]] = {}  # a rate set twice in one batch: its last setting
        for event in events:
            if isinstance(event, ExchangeRates.ExchangeRateSet):
                row = self.row(event)
                latest[row[0]] = row
        rows = list(latest.values())
        updates = ", ".join(f"{c} = excluded.{c}" for c in EXCHANGE_RATE_COLUMNS if c != "id")
        cursor.insert_rows(
            EXCHANGE_RATES_TABLE,
            EXCHANGE_RATE_COLUMNS,
            rows,
            f"ON CONFLICT (id) DO UPDATE SET {updates} "
            f"WHERE {EXCHANGE_RATES_TABLE}.version < excluded.version",
        )

    @staticmethod
    def row(event: ExchangeRates.ExchangeRateSet) -> list[Any]:
        organization_id = str(event.context.organization_id)
        effective_from = event.effective_from.isoformat()
        return [
            f"{organization_id}:{event.base_currency}:{event.currency}:{effective_from}",
            organization_id,
            event.base_currency,
            event.currency,
            effective_from,
            str(event.rate_to_base),
            micros(event.context.occurred_at),
            event.context.actor_id,
            event.originator_version,
            micros(event.timestamp),
        ]


class PipelineQueries:
    """Reads an organization's pipelines and exchange rates."""

    def __init__(self, store: ReadModelStore) -> None:
        self.store = store
        self.model = PipelinesProjection()

    def pipelines(self, organization_id: UUID) -> list[RowDict]:
        """Every pipeline of the organization, the default one first."""
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.model.table} WHERE organization_id = ? "
                "ORDER BY defined_at_us, pipeline_id",
                [str(organization_id)],
            )
            rows = [self.model.decode(row) for row in cursor.fetchall()]
        if not any(row["pipeline_id"] == DEFAULT_PIPELINE.id for row in rows):
            rows.insert(0, default_row(organization_id))
        rows.sort(key=lambda row: row["pipeline_id"] != DEFAULT_PIPELINE.id)
        return rows

    def definitions(self, organization_id: UUID) -> dict[str, PipelineDefinition]:
        """The organization's pipelines as values, by id (the default one first)."""
        rows = self.pipelines(organization_id)
        return {row["pipeline_id"]: definition_of(row) for row in rows}

    def pipeline(self, organization_id: UUID, pipeline_id: str) -> RowDict | None:
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.model.table} WHERE organization_id = ? AND pipeline_id = ?",
                [str(organization_id), pipeline_id],
            )
            row = cursor.fetchone()
        if row is None:
            return default_row(organization_id) if pipeline_id == DEFAULT_PIPELINE.id else None
        return self.model.decode(row)

    def exchange_rates(self, organization_id: UUID, currency: str | None = None) -> list[RowDict]:
        """The rates set, by currency and effective date."""
        clauses, params = ["organization_id = ?"], [str(organization_id)]
        if currency is not None:
            clauses.append("currency = ?")
            params.append(currency)
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {EXCHANGE_RATES_TABLE} WHERE {' AND '.join(clauses)} "
                "ORDER BY currency, effective_from, base_currency",
                params,
            )
            return [dict(row) for row in cursor.fetchall()]


def default_row(organization_id: UUID) -> RowDict:
    """The default pipeline of an organization that has not used it since pipelines became
    records (the service defines it on first use): what it will be, at version 0."""
    return {
        "id": str(Pipeline.id_for(organization_id, DEFAULT_PIPELINE.id)),
        "organization_id": str(organization_id),
        "pipeline_id": DEFAULT_PIPELINE.id,
        "name": DEFAULT_PIPELINE.name,
        "stages": [stage.as_dict() for stage in DEFAULT_PIPELINE.stages],
        "defined_at_us": None,
        "version": 0,
        "updated_at_us": None,
        "recorded_at_us": None,
    }


def open_deal_ids(
    store: ReadModelStore, organization_id: UUID, pipeline_id: str, stage_id: str
) -> list[UUID]:
    """The open, unarchived deals in one stage of a pipeline, as the deals read model has them."""
    with store.transaction(commit=False) as cursor:
        cursor.execute(
            "SELECT id FROM rm_deals WHERE organization_id = ? AND pipeline_id = ? AND stage = ? "
            "AND status = ? AND archived = 0 ORDER BY id",
            [str(organization_id), pipeline_id, stage_id, DealStatus.OPEN.value],
        )
        return [UUID(row["id"]) for row in cursor.fetchall()]
