"""The deals read model: one row per deal, plus the open-pipeline summary the analytics read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import singledispatchmethod
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from aggregates.deal import Deal, DealStatus
from aggregates.pipeline import Pipeline
from event_store.read_model_store import SqlCursor
from projections.closed_summary import (
    BREAKDOWNS,
    CLOSED_SUMMARY_TABLE,
    closed_summary_schema,
    move_closed_contributions,
    summarize_closed_deals,
)
from projections.pipelines import PipelinesProjection
from projections.row_projection import (
    FOREVER_US,
    ChangesProjection,
    RowDict,
    add_to_summary,
)
from projections.scope_keys import SCOPE_KEY, add_scope_key_column, scope_key
from projections.spans import SPAN_CLASS, any_span_class, span_class_sql
from projections.stage_conversion import DERIVED_TABLES as CONVERSION_TABLES
from projections.stage_conversion import ENTRIES_TABLE, StageConversions, VisitFacts
from projections.stage_durations import DERIVED_TABLES as DURATION_TABLES
from projections.stage_durations import StageDurations
from projections.units import micros, money_e4, organization_text, record_text

PIPELINE_VALUE_TABLE = "rm_pipeline_value"
STAGE_VISITS_TABLE = "rm_stage_visits"
STAGE_VISIT_COLUMNS = (
    "id", "visit_no", "organization_id", "pipeline_id", "stage", "from_stage", "owner_id",
    "entered_at_us", "left_at_us",
)  # fmt: skip
UNKEYED_INDEXES = {
    STAGE_VISITS_TABLE: ("by_org", "by_stage", "by_span", "by_duration", "open"),
    ENTRIES_TABLE: ("by_entering", "by_converting"),
}
"""The indexes earlier releases built, led by the organization and pipeline: replaced by
those led by the scope key (the one by organization and entering by the index by span)."""
SCOPED_TABLES = (STAGE_VISITS_TABLE, ENTRIES_TABLE)
"""The tables whose indexes a scope key leads (:mod:`projections.scope_keys`)."""
VISIT_SPAN_CLASS = span_class_sql("entered_at_us", "left_at_us")
ANY_VISIT_SPAN = any_span_class("entered_at_us", "left_at_us")
"""Beside a range of entering: the visits entered in it, read from the index by span."""
# What a pipeline's events change of the stages' order, which conversion counts by.
STAGE_ORDER_CHANGES = (
    Pipeline.PipelineDefined,
    Pipeline.StageAdded,
    Pipeline.StageRemoved,
    Pipeline.StagesReordered,
)
PIPELINE_TOTALS_TABLE = "rm_pipeline_totals"  # the same without the close date: no-period reads
FORECAST_TABLE = "rm_forecast_open"  # the same by close month, without the stage: the forecast
FORECAST_KEY = ("organization_id", "pipeline_id", "owner_key", "currency", "close_month")
EMPTIED_ROWS = "WHERE deals = 0"
"""The condition of the summaries' indexes of emptied rows, which every batch's writes use."""
# The open deals' indexes hold the rows of this condition, which the analytics' queries write
# out the same way: then both stores see that an index holds every row asked for.
OPEN_DEALS = f"status = '{DealStatus.OPEN.value}' AND archived = 0"
CLOSED_DEALS = f"status IN ('{DealStatus.WON.value}', '{DealStatus.LOST.value}')"
# The closed deals' indexes hold the rows with a close time; every query of closed deals
# bounds it. (Were the condition on the status, PostgreSQL would not range over the status
# column of the index: it drops from the index conditions what the index's condition implies.)
CLOSED_INDEXED = "closed_at_us IS NOT NULL"
CLOSED_DEAL_FACTS = (
    "opened_at_us, currency, value_e4, owner_id, pipeline_id, source, lost_reason, "
    "lost_competitor, client_id"
)
OPEN_DEAL_FACTS = "currency, value_e4, probability, pipeline_id, owner_id"
"""What the analytics read of a deal, kept in their indexes: no table reads."""
PIPELINE_VALUE_KEY = (
    "organization_id",
    "pipeline_id",
    "owner_key",
    "stage",
    "currency",
    "expected_close_date",
)
OPEN_SUMS = ("deals", "value_e4", "weighted_e6")
"""What the open-pipeline summaries sum: deals, their value and their weighted value."""
OpenSummary = tuple[str, tuple[str, ...], str]
"""An open-pipeline summary: its table, its key columns, and SQL for the key of a deal row."""
_OWNER_KEY = "COALESCE(owner_id, '')"
OPEN_SUMMARIES: tuple[OpenSummary, ...] = (
    (
        PIPELINE_VALUE_TABLE,
        PIPELINE_VALUE_KEY,
        f"organization_id, pipeline_id, {_OWNER_KEY}, stage, currency, expected_close_date",
    ),
    (
        PIPELINE_TOTALS_TABLE,
        PIPELINE_VALUE_KEY[:-1],
        f"organization_id, pipeline_id, {_OWNER_KEY}, stage, currency",
    ),
    (
        FORECAST_TABLE,
        FORECAST_KEY,
        f"organization_id, pipeline_id, {_OWNER_KEY}, currency, substr(expected_close_date, 1, 7)",
    ),
)


def add_scope_keys(cursor: SqlCursor) -> None:
    """Scope keys (:mod:`projections.scope_keys`) to the stage visits and conversion entries
    stored by earlier releases, before the schema builds the indexes led by them."""
    for table, unkeyed in UNKEYED_INDEXES.items():
        add_scope_key_column(cursor, table, unkeyed)


class DealsProjection(ChangesProjection):
    created_by = Deal.DealOpened
    table = "rm_deals"
    columns = (
        "id",
        "organization_id",
        "name",
        "client_id",
        "value_e4",
        "currency",
        "expected_close_date",
        "pipeline_id",
        "stage",
        "probability",
        "owner_id",
        "source",
        "competitor",
        "notes",
        "stakeholder_contact_ids",
        "stakeholder_user_ids",
        "status",
        "archived",
        "lost_reason",
        "lost_competitor",
        "opened_at_us",
        "closed_at_us",
        "stage_entered_at_us",
        "created_by",
        "version",
        "updated_at_us",
        "recorded_at_us",
    )
    keeps_history = True
    history_indexes = (  # instead of the default: every read of the history uses these
        "DROP INDEX IF EXISTS rm_deals_history_valid",
        "CREATE INDEX IF NOT EXISTS rm_deals_history_closed_facts ON rm_deals_history "
        "(organization_id, status, closed_at_us, valid_from_us, valid_to_us, "
        f"{CLOSED_DEAL_FACTS}) WHERE {CLOSED_INDEXED}",
        "CREATE INDEX IF NOT EXISTS rm_deals_history_open_spans ON rm_deals_history "
        f"(organization_id, {SPAN_CLASS}, valid_from_us, valid_to_us, pipeline_id, owner_id, "
        f"stage, currency, value_e4, probability, expected_close_date) WHERE {OPEN_DEALS}",
        "CREATE INDEX IF NOT EXISTS rm_deals_history_open_by_close ON rm_deals_history "
        f"(organization_id, expected_close_date, {OPEN_DEAL_FACTS}, valid_from_us, "
        f"valid_to_us) WHERE {OPEN_DEALS}",
    )
    json_columns = frozenset({"stakeholder_contact_ids", "stakeholder_user_ids"})
    column_types: ClassVar[dict[str, str]] = {
        "value_e4": "BIGINT",
        "probability": "INTEGER",
        "archived": "INTEGER",
        "opened_at_us": "BIGINT",
        "closed_at_us": "BIGINT",
        "stage_entered_at_us": "BIGINT",
        "version": "INTEGER",
        "updated_at_us": "BIGINT",
        "recorded_at_us": "BIGINT",
    }
    indexes = (
        "CREATE INDEX IF NOT EXISTS rm_deals_by_org_updated "
        "ON rm_deals (organization_id, updated_at_us, id)",
        "CREATE INDEX IF NOT EXISTS rm_deals_by_org_name ON rm_deals (organization_id, name, id)",
        "CREATE INDEX IF NOT EXISTS rm_deals_by_org_value "
        "ON rm_deals (organization_id, value_e4, id)",
        "CREATE INDEX IF NOT EXISTS rm_deals_by_org_close "
        "ON rm_deals (organization_id, expected_close_date, id)",
        "CREATE INDEX IF NOT EXISTS rm_deals_by_org_opened "
        "ON rm_deals (organization_id, opened_at_us, id)",
        "CREATE INDEX IF NOT EXISTS rm_deals_closed_facts "
        "ON rm_deals (organization_id, status, closed_at_us, "
        f"{CLOSED_DEAL_FACTS}) WHERE {CLOSED_INDEXED}",
        "CREATE INDEX IF NOT EXISTS rm_deals_open_facts ON rm_deals "
        f"(organization_id, expected_close_date, {OPEN_DEAL_FACTS}) WHERE {OPEN_DEALS}",
        # The sales cycle reads only the close and open times: a narrower index, fewer pages.
        "CREATE INDEX IF NOT EXISTS rm_deals_closed_cycle "
        "ON rm_deals (organization_id, status, closed_at_us, opened_at_us)",
        "DROP INDEX IF EXISTS rm_deals_closed",  # replaced by rm_deals_closed_cycle
        "CREATE INDEX IF NOT EXISTS rm_deals_by_client ON rm_deals (organization_id, client_id)",
        "CREATE INDEX IF NOT EXISTS rm_deals_closed_by_owner "
        "ON rm_deals (organization_id, owner_id, status, closed_at_us, opened_at_us)",
    )

    def schema(self) -> list[str]:
        key = ", ".join(PIPELINE_VALUE_KEY)
        return [
            *super().schema(),
            f"CREATE TABLE IF NOT EXISTS {PIPELINE_VALUE_TABLE} ("
            "organization_id TEXT NOT NULL, pipeline_id TEXT NOT NULL, owner_key TEXT NOT NULL, "
            "stage TEXT NOT NULL, currency TEXT NOT NULL, expected_close_date TEXT NOT NULL, "
            "deals BIGINT NOT NULL, value_e4 NUMERIC(38) NOT NULL, "
            "weighted_e6 NUMERIC(38) NOT NULL, "
            f"PRIMARY KEY ({key}))",
            f"CREATE TABLE IF NOT EXISTS {PIPELINE_TOTALS_TABLE} ("
            "organization_id TEXT NOT NULL, pipeline_id TEXT NOT NULL, owner_key TEXT NOT NULL, "
            "stage TEXT NOT NULL, currency TEXT NOT NULL, deals BIGINT NOT NULL, "
            "value_e4 NUMERIC(38) NOT NULL, weighted_e6 NUMERIC(38) NOT NULL, "
            f"PRIMARY KEY ({', '.join(PIPELINE_VALUE_KEY[:-1])}))",
            f"CREATE TABLE IF NOT EXISTS {FORECAST_TABLE} ("
            "organization_id TEXT NOT NULL, pipeline_id TEXT NOT NULL, owner_key TEXT NOT NULL, "
            "currency TEXT NOT NULL, close_month TEXT NOT NULL, deals BIGINT NOT NULL, "
            "value_e4 NUMERIC(38) NOT NULL, weighted_e6 NUMERIC(38) NOT NULL, "
            f"PRIMARY KEY ({', '.join(FORECAST_KEY)}))",
            # Rows a batch empties are deleted after it: find them without scanning the table.
            f"CREATE INDEX IF NOT EXISTS {FORECAST_TABLE}_emptied "
            f"ON {FORECAST_TABLE} (deals) {EMPTIED_ROWS}",
            f"CREATE INDEX IF NOT EXISTS {PIPELINE_VALUE_TABLE}_emptied "
            f"ON {PIPELINE_VALUE_TABLE} (deals) {EMPTIED_ROWS}",
            f"CREATE INDEX IF NOT EXISTS {PIPELINE_TOTALS_TABLE}_emptied "
            f"ON {PIPELINE_TOTALS_TABLE} (deals) {EMPTIED_ROWS}",
            f"CREATE TABLE IF NOT EXISTS {STAGE_VISITS_TABLE} ("
            "id TEXT NOT NULL, visit_no INTEGER NOT NULL, organization_id TEXT NOT NULL, "
            "pipeline_id TEXT NOT NULL, stage TEXT NOT NULL, from_stage TEXT, owner_id TEXT, "
            "entered_at_us BIGINT NOT NULL, left_at_us BIGINT NOT NULL, "
            f"{SCOPE_KEY} BIGINT NOT NULL, PRIMARY KEY (id, visit_no))",
            # Time in stage: a stage's visits by entering, with what their durations need.
            f"CREATE INDEX IF NOT EXISTS {STAGE_VISITS_TABLE}_by_scope_stage "
            f"ON {STAGE_VISITS_TABLE} ({SCOPE_KEY}, stage, entered_at_us, left_at_us, owner_id, "
            "organization_id, pipeline_id)",
            # Visits under way at an instant, by span class (projections.spans), in the order
            # of entering: the rotting list, longest first; with every class named, the visits
            # entered in a range (conversion over a period, transitions).
            f"CREATE INDEX IF NOT EXISTS {STAGE_VISITS_TABLE}_by_scope_span "
            f"ON {STAGE_VISITS_TABLE} ({SCOPE_KEY}, {VISIT_SPAN_CLASS}, entered_at_us, id, stage, "
            "visit_no, from_stage, owner_id, left_at_us, organization_id, pipeline_id)",
            *self.conversions.schema(),
            *self.durations.schema(),
            *closed_summary_schema(),
        ]

    conversions = StageConversions(STAGE_VISITS_TABLE)
    durations = StageDurations(STAGE_VISITS_TABLE)

    def process(self, cursor: SqlCursor, events: Sequence[DomainEventProtocol[UUID]]) -> None:
        """Fold the batch's deal events; then count anew the conversions of each pipeline
        whose stage order the batch changed (the pipelines' read model already has it)."""
        reordered = [event for event in events if isinstance(event, STAGE_ORDER_CHANGES)]
        if not cursor.derived_at_end and (reordered or any(map(self.handles, events))):
            self.conversions.lock(cursor, exclusive=bool(reordered))
        super().process(cursor, events)
        if reordered and not cursor.derived_at_end:
            for organization_id, pipeline_id in pipelines_of(cursor, reordered):
                self.conversions.recompute(cursor, organization_id, pipeline_id)

    derived_tables = (
        *CONVERSION_TABLES,
        *DURATION_TABLES,
        *(table for table, _, _ in OPEN_SUMMARIES),
        CLOSED_SUMMARY_TABLE,
    )
    """What :meth:`derive` fills; it only reads the other tables."""

    def clear_derived(self, cursor: SqlCursor) -> None:
        for table in self.derived_tables:
            cursor.execute(f"DELETE FROM {table}")

    def derive(self, cursor: SqlCursor, share: int = 0, shares: int = 1) -> None:
        """The end of a bulk load: what the batches left, a share of it (stage conversion
        counts of a share of the deals; finished visits by duration, a table per share;
        a share of the open-pipeline summaries, each summary whole). The conversion counts
        come last: shares add to the same rows, and a share waits for the transaction of
        another that added to them first to end."""
        self.durations.derive(cursor, share, shares)
        summarize_open_deals(cursor, OPEN_SUMMARIES[share::shares])
        summarize_closed_deals(cursor, BREAKDOWNS[share::shares])
        self.conversions.derive(cursor, share, shares)

    def handles(self, event: DomainEventProtocol[UUID]) -> bool:
        return isinstance(event, Deal.Event)

    def receives(self, event: DomainEventProtocol[UUID]) -> bool:
        """The deals' events, and a pipeline's changes of its stages' order (conversion)."""
        return self.handles(event) or isinstance(event, STAGE_ORDER_CHANGES)

    @singledispatchmethod
    def changes(self, event: Any, row: RowDict) -> RowDict:
        return {}

    @changes.register
    def _(self, event: Deal.DealOpened, row: RowDict) -> RowDict:
        at = micros(event.context.occurred_at)
        return {
            "id": record_text(event.originator_id),
            "organization_id": organization_text(event.context.organization_id),
            "name": event.name,
            "client_id": str(event.client_id),
            "value_e4": money_e4(event.value),
            "currency": event.currency,
            "expected_close_date": event.expected_close_date.isoformat(),
            "pipeline_id": event.pipeline_id,
            "stage": event.stage,
            "probability": event.probability,
            "owner_id": event.owner_id,
            "source": event.source,
            "competitor": event.competitor,
            "notes": event.notes,
            "stakeholder_contact_ids": [str(i) for i in event.stakeholder_contact_ids],
            "stakeholder_user_ids": list(event.stakeholder_user_ids),
            "status": DealStatus.OPEN.value,
            "archived": 0,
            "lost_reason": None,
            "lost_competitor": None,
            "opened_at_us": at,
            "closed_at_us": None,
            "stage_entered_at_us": at,
            "created_by": event.context.actor_id,
        }

    @changes.register
    def _(self, event: Deal.StageChanged, row: RowDict) -> RowDict:
        return {
            "stage": event.to_stage,
            "probability": event.probability,
            "stage_entered_at_us": micros(event.context.occurred_at),
        }

    @changes.register
    def _(self, event: Deal.DealValueChanged, row: RowDict) -> RowDict:
        return {"value_e4": money_e4(event.value), "currency": event.currency}

    @changes.register
    def _(self, event: Deal.ExpectedCloseDateChanged, row: RowDict) -> RowDict:
        return {"expected_close_date": event.expected_close_date.isoformat()}

    @changes.register
    def _(self, event: Deal.ProbabilityChanged, row: RowDict) -> RowDict:
        return {"probability": event.probability}

    @changes.register
    def _(self, event: Deal.DealReassigned, row: RowDict) -> RowDict:
        return {"owner_id": event.owner_id}

    @changes.register
    def _(self, event: Deal.StakeholdersChanged, row: RowDict) -> RowDict:
        return {
            "stakeholder_contact_ids": [str(i) for i in event.contact_ids],
            "stakeholder_user_ids": list(event.user_ids),
        }

    @changes.register
    def _(self, event: Deal.DealDetailsChanged, row: RowDict) -> RowDict:
        return dict(event.changes)

    @changes.register
    def _(self, event: Deal.DealWon, row: RowDict) -> RowDict:
        at = micros(event.context.occurred_at)
        return {
            "status": DealStatus.WON.value,
            "stage": event.stage,
            "probability": 100,
            "value_e4": money_e4(event.value),
            "currency": event.currency,
            "closed_at_us": at,
            "stage_entered_at_us": at,
        }

    @changes.register
    def _(self, event: Deal.DealLost, row: RowDict) -> RowDict:
        at = micros(event.context.occurred_at)
        return {
            "status": DealStatus.LOST.value,
            "stage": event.stage,
            "probability": 0,
            "lost_reason": event.reason,
            "lost_competitor": event.competitor,
            "closed_at_us": at,
            "stage_entered_at_us": at,
        }

    @changes.register
    def _(self, event: Deal.DealReopened, row: RowDict) -> RowDict:
        return {
            "status": DealStatus.OPEN.value,
            "stage": event.stage,
            "probability": event.probability,
            "lost_reason": None,
            "lost_competitor": None,
            "closed_at_us": None,
            "stage_entered_at_us": micros(event.context.occurred_at),
        }

    @changes.register
    def _(self, event: Deal.DealMovedToPipeline, row: RowDict) -> RowDict:
        return {
            "pipeline_id": event.to_pipeline,
            "stage": event.to_stage,
            "probability": event.probability,
            "stage_entered_at_us": micros(event.context.occurred_at),
        }

    @changes.register
    def _(self, event: Deal.DealArchived, row: RowDict) -> RowDict:
        return {"archived": 1}

    def write_history(
        self, cursor: SqlCursor, before: dict[str, RowDict | None], versions: list[RowDict]
    ) -> None:
        super().write_history(cursor, before, versions)
        self.write_stage_visits(cursor, before, versions)

    def write_stage_visits(
        self, cursor: SqlCursor, before: dict[str, RowDict | None], versions: list[RowDict]
    ) -> None:
        """A visit runs from entering a stage until leaving it or being archived. Re-entries
        are visits of their own; each visit remembers the stage the deal came from."""
        known = [key for key, row in before.items() if row]
        earlier: dict[str, list[VisitFacts]] = {}
        if cursor.derived_at_end:
            last_no, open_no = self._visit_numbers(cursor, known)
        else:
            earlier, last_no, open_no = self._visits_of(cursor, known)
        previous = {key: row for key, row in before.items() if row is not None}
        opened: dict[tuple[str, int], list[Any]] = {}
        closed_earlier: list[tuple[int, str, int]] = []
        for version in versions:
            key, at = version["id"], version["updated_at_us"]
            last = previous.get(key)
            previous[key] = version
            if last is not None and last["archived"]:
                continue
            moved = last is None or (last["pipeline_id"], last["stage"]) != (
                version["pipeline_id"],
                version["stage"],
            )
            archiving = bool(version["archived"])
            if not (moved or archiving):
                continue
            visit = open_no.pop(key, None)
            if visit is not None and (key, visit) in opened:
                opened[(key, visit)][-1] = at
            elif visit is not None:
                closed_earlier.append((at, key, visit))
            if archiving:
                continue
            number = last_no.get(key, 0) + 1
            last_no[key] = open_no[key] = number
            opened[(key, number)] = [
                key, number, version["organization_id"], version["pipeline_id"],
                version["stage"], None if last is None else last["stage"],
                version["owner_id"], at, FOREVER_US,
            ]  # fmt: skip
        cursor.executemany(
            f"UPDATE {STAGE_VISITS_TABLE} SET left_at_us = ? WHERE id = ? AND visit_no = ?",
            closed_earlier,
        )
        cursor.insert_rows(
            STAGE_VISITS_TABLE,
            (*STAGE_VISIT_COLUMNS, SCOPE_KEY),
            [(*values, scope_key(values[2], values[3])) for values in opened.values()],
            "ON CONFLICT (id, visit_no) DO NOTHING",
        )
        if not cursor.derived_at_end:
            self.conversions.visits_opened(
                cursor, earlier, [VisitFacts(*values[:8]) for values in opened.values()]
            )
            finished = [
                (VisitFacts(*values[:8]), values[-1])
                for values in opened.values()
                if values[-1] != FOREVER_US
            ]
            if closed_earlier:
                stored = {(v.id, v.visit_no): v for visits in earlier.values() for v in visits}
                finished += [(stored[(key, no)], at) for at, key, no in closed_earlier]
            self.durations.visits_finished(cursor, finished)

    def _visits_of(
        self, cursor: SqlCursor, ids: list[str]
    ) -> tuple[dict[str, list[VisitFacts]], dict[str, int], dict[str, int]]:
        """Each deal's visits so far (by number), its latest visit number, and the number of
        its open visit if any."""
        visits: dict[str, list[VisitFacts]] = {}
        last_no: dict[str, int] = {}
        open_no: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            among, params = cursor.one_of("id", ids[start : start + 500])
            cursor.execute(
                f"SELECT {', '.join(STAGE_VISIT_COLUMNS)} FROM {STAGE_VISITS_TABLE} "
                f"WHERE {among} ORDER BY id, visit_no",
                params,
            )
            for row in cursor.fetchall():
                visit = VisitFacts(*(row[column] for column in STAGE_VISIT_COLUMNS[:8]))
                visits.setdefault(visit.id, []).append(visit)
                last_no[visit.id] = visit.visit_no
                if row["left_at_us"] == FOREVER_US:
                    open_no[visit.id] = visit.visit_no
        return visits, last_no, open_no

    def _visit_numbers(
        self, cursor: SqlCursor, ids: list[str]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Each deal's latest visit number, and the number of its open visit if any."""
        last_no: dict[str, int] = {}
        open_no: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            among, params = cursor.one_of("id", chunk)
            cursor.execute(
                f"SELECT id, MAX(visit_no) AS last_no, "
                f"MAX(CASE WHEN left_at_us = {FOREVER_US} THEN visit_no END) AS open_no "
                f"FROM {STAGE_VISITS_TABLE} WHERE {among} GROUP BY id",
                params,
            )
            for row in cursor.fetchall():
                last_no[row["id"]] = int(row["last_no"])
                if row["open_no"] is not None:
                    open_no[row["id"]] = int(row["open_no"])
        return last_no, open_no

    def after_batch(
        self, cursor: SqlCursor, before: dict[str, RowDict | None], after: dict[str, RowDict]
    ) -> None:
        """Move each changed deal's contribution in the open-pipeline summaries and the
        closed deals' summary — in a bulk load, left to its end (:func:`summarize_open_deals`,
        :func:`summarize_closed_deals`): the batches of a load would move most deals'
        contributions several times over."""
        if cursor.derived_at_end:
            return
        move_closed_contributions(cursor, before, after)
        deltas: Counter[tuple[Any, ...]] = Counter()
        values: Counter[tuple[Any, ...]] = Counter()
        weighted: Counter[tuple[Any, ...]] = Counter()
        for key, new in after.items():
            for row, sign in ((before[key], -1), (new, +1)):
                if row is None or row["status"] != DealStatus.OPEN.value or row["archived"]:
                    continue
                summary_key = (
                    row["organization_id"],
                    row["pipeline_id"],
                    row["owner_id"] or "",
                    row["stage"],
                    row["currency"],
                    row["expected_close_date"],
                )
                deltas[summary_key] += sign
                values[summary_key] += sign * row["value_e4"]
                weighted[summary_key] += sign * row["value_e4"] * row["probability"]
        changed = [  # in key order, so concurrent workers lock rows in the same order
            (*k, deltas[k], values[k], weighted[k])
            for k in sorted(deltas)
            if deltas[k] or values[k] or weighted[k]
        ]
        if not changed:
            return
        totals: dict[tuple[Any, ...], list[int]] = {}
        months: dict[tuple[Any, ...], list[int]] = {}
        for k in sorted(deltas):
            organization, pipeline, owner, _, currency, close_date = k
            for summary, summary_key in (
                (totals, k[:-1]),  # the key without the close date
                (months, (organization, pipeline, owner, currency, close_date[:7])),
            ):
                sums = summary.setdefault(summary_key, [0, 0, 0])
                sums[0] += deltas[k]
                sums[1] += values[k]
                sums[2] += weighted[k]
        add_to_summary(cursor, PIPELINE_VALUE_TABLE, PIPELINE_VALUE_KEY, OPEN_SUMS, changed)
        for table, key_columns, summary in (
            (PIPELINE_TOTALS_TABLE, PIPELINE_VALUE_KEY[:-1], totals),
            (FORECAST_TABLE, FORECAST_KEY, months),
        ):
            add_to_summary(
                cursor,
                table,
                key_columns,
                OPEN_SUMS,
                [(*key, *sums) for key, sums in sorted(summary.items()) if any(sums)],
            )


def pipelines_of(
    cursor: SqlCursor, events: Sequence[DomainEventProtocol[UUID]]
) -> list[tuple[str, str]]:
    """(organization, pipeline id) of each pipeline record the events are of."""
    among, params = cursor.one_of("id", sorted({str(event.originator_id) for event in events}))
    cursor.execute(
        f"SELECT organization_id, pipeline_id FROM {PipelinesProjection.table} WHERE {among} "
        "ORDER BY organization_id, pipeline_id",
        params,
    )
    return [(row["organization_id"], row["pipeline_id"]) for row in cursor.fetchall()]


def summarize_open_deals(cursor: SqlCursor, summaries: Sequence[OpenSummary]) -> None:
    """Open-pipeline summaries from the open deals' rows, into cleared tables: what
    :meth:`DealsProjection.after_batch` keeps batch by batch."""
    for table, key_columns, key_sql in summaries:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join((*key_columns, *OPEN_SUMS))}) "
            f"SELECT {key_sql}, COUNT(*), SUM(value_e4), SUM(value_e4 * probability) "
            f"FROM {DealsProjection.table} WHERE {OPEN_DEALS} GROUP BY {key_sql}"
        )
