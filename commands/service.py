"""The application service: load the records a command touches, let them decide, save.

Every command returns :class:`Accepted` — which record, its new version and the log position
of the save — so the API can answer with an ETag and a position to read one's own writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from aggregates.access import Role, may_change_deal
from aggregates.api_token import ApiToken
from aggregates.base import CrmAggregate
from aggregates.client import Client
from aggregates.contact import Contact
from aggregates.context import EventContext
from aggregates.deal import Deal
from aggregates.email_claim import EmailClaim, normalized_email
from aggregates.errors import RuleBroken
from aggregates.exchange_rates import ExchangeRates
from aggregates.membership import Membership
from aggregates.organization import Organization
from aggregates.pipeline import DEFAULT_PIPELINE_ID, Pipeline, PipelineDefinition
from commands import models
from commands.errors import (
    ConcurrentChange,
    Forbidden,
    IdempotencyKeyReused,
    ReadModelsBehind,
    RecordNotFound,
    StaleVersion,
)
from commands.idempotency import IdempotentCommand
from commands.loading import LoadedRecords, PipelinesInUse
from event_store.application import EventStoreApplication

MAX_ATTEMPTS = 5
TAggregate = TypeVar("TAggregate", bound=CrmAggregate)
TAny = TypeVar("TAny", bound=Aggregate)
RECORD_TYPES: dict[type[CrmAggregate], str] = {
    Client: "client",
    Contact: "contact",
    Deal: "deal",
    Organization: "organization",
    Membership: "member",
    ApiToken: "token",
    Pipeline: "pipeline",
    ExchangeRates: "exchange_rates",
}


class OpenDealsInStage(Protocol):
    """The ids of the open, unarchived deals in one stage of a pipeline, from the read models
    once they include every stored event (:class:`ReadModelsBehind` if they cannot catch up)."""

    def __call__(self, organization_id: UUID, pipeline_id: str, stage_id: str) -> list[UUID]: ...


def no_read_models(organization_id: UUID, pipeline_id: str, stage_id: str) -> list[UUID]:
    raise ReadModelsBehind()


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    fingerprint: str


@dataclass(frozen=True)
class CommandMeta:
    """How a command was sent: by whom, for when, and with which HTTP preconditions."""

    organization_id: UUID
    actor_id: str
    role: Role = Role.ADMIN
    occurred_at: datetime | None = None
    command_id: UUID = field(default_factory=uuid4)
    correlation_id: UUID | None = None
    expected_version: int | None = None
    idempotency: IdempotencyKey | None = None

    def context(self) -> EventContext:
        return EventContext(
            organization_id=self.organization_id,
            actor_id=self.actor_id,
            occurred_at=self.occurred_at or datetime.now(UTC),
            command_id=self.command_id,
            correlation_id=self.correlation_id or self.command_id,
        )


@dataclass(frozen=True)
class Accepted:
    record_type: str
    record_id: UUID
    version: int
    position: int
    created: bool
    replayed: bool = False


@dataclass
class Decision:
    """What a command decided: the record it is about and every aggregate it changed."""

    record: CrmAggregate
    changed: list[Aggregate]
    created: bool = False


class CrmApplication(EventStoreApplication):
    """Loads → decides → saves, for every command of the CRM."""

    name = "crm"  # the store's table is crm_events, whichever application opens it

    def __init__(
        self,
        *args: Any,
        on_saved: Callable[[int, list[Aggregate]], None] | None = None,
        open_deals_in_stage: OpenDealsInStage = no_read_models,
        **kw: Any,
    ):
        super().__init__(*args, **kw)
        self.on_saved = on_saved
        self.open_deals_in_stage = open_deals_in_stage
        self.pipelines_in_use = PipelinesInUse()

    # --- clients -------------------------------------------------------------------------

    def register_client(self, cmd: models.RegisterClient, meta: CommandMeta) -> Accepted:
        def decide() -> Decision:
            client = Client(
                name=cmd.name,
                category=cmd.category.value,
                status=cmd.status.value,
                details=cmd.details(),
                context=meta.context(),
            )
            return Decision(client, [client], created=True)

        return self.execute(meta, decide)

    def change_client_details(
        self, client_id: UUID, cmd: models.ChangeClientDetails, meta: CommandMeta
    ) -> Accepted:
        def decide() -> Decision:
            client = self.load_record(Client, client_id, meta)
            client.change_details(cmd.changed_details(), meta.context())
            return Decision(client, [client])

        return self.execute(meta, decide)

    def change_client_status(
        self, client_id: UUID, cmd: models.ChangeClientStatus, meta: CommandMeta
    ) -> Accepted:
        def decide() -> Decision:
            client = self.load_record(Client, client_id, meta)
            client.change_status(
                status=(cmd.status or client.status),
                category=(cmd.category or client.category),
                context=meta.context(),
            )
            return Decision(client, [client])

        return self.execute(meta, decide)

    def set_primary_contact(
        self, client_id: UUID, cmd: models.SetPrimaryContact, meta: CommandMeta
    ) -> Accepted:
        def decide() -> Decision:
            client = self.load_record(Client, client_id, meta)
            contact = self.load_record(Contact, cmd.contact_id, meta, for_field="contact_id")
            if contact.client_id != client.id or contact.archived:
                raise RuleBroken(
                    f"Contact {contact.id} is not linked to client {client.id}; "
                    "link it before making it the primary contact."
                )
            client.set_primary_contact(contact.id, meta.context())
            return Decision(client, [client])

        return self.execute(meta, decide)

    def archive_client(self, client_id: UUID, meta: CommandMeta) -> Accepted:
        return self.on_record(Client, client_id, meta, lambda c: c.archive(meta.context()))

    def restore_client(self, client_id: UUID, meta: CommandMeta) -> Accepted:
        return self.on_record(Client, client_id, meta, lambda c: c.restore(meta.context()))

    # --- contacts ------------------------------------------------------------------------

    def create_contact(self, cmd: models.CreateContact, meta: CommandMeta) -> Accepted:
        def decide() -> Decision:
            context = meta.context()
            if cmd.client_id is not None:
                self.load_record(
                    Client, cmd.client_id, meta, for_field="client_id"
                ).check_not_archived()
            contact = Contact(
                first_name=cmd.first_name,
                last_name=cmd.last_name,
                email=normalized_email(cmd.email),
                details=cmd.details(),
                context=context,
            )
            claim = self._claim_email(contact, cmd.email, meta)
            if cmd.client_id is not None:
                contact.link_to(cmd.client_id, context)
            return Decision(contact, [contact, claim], created=True)

        return self.execute(meta, decide)

    def change_contact_details(
        self, contact_id: UUID, cmd: models.ChangeContactDetails, meta: CommandMeta
    ) -> Accepted:
        def decide() -> Decision:
            contact = self.load_record(Contact, contact_id, meta)
            changes = cmd.changed_details()
            changed: list[Aggregate] = [contact]
            new_email = None if cmd.email is None else normalized_email(cmd.email)
            if new_email is not None and new_email != contact.email:
                old_claim = self.find(
                    EmailClaim, EmailClaim.id_for(meta.organization_id, contact.email)
                )
                changed.append(self._claim_email(contact, new_email, meta))
                if old_claim is not None:
                    old_claim.release(contact.id, meta.context())
                    changed.append(old_claim)
                changes["email"] = new_email
            for name in ("first_name", "last_name"):
                if name in cmd.model_fields_set and getattr(cmd, name) is not None:
                    changes[name] = getattr(cmd, name)
            contact.change_details(changes, meta.context())
            return Decision(contact, changed)

        return self.execute(meta, decide)

    def link_contact(
        self, contact_id: UUID, cmd: models.LinkContact, meta: CommandMeta
    ) -> Accepted:
        def decide() -> Decision:
            contact = self.load_record(Contact, contact_id, meta)
            self.load_record(
                Client, cmd.client_id, meta, for_field="client_id"
            ).check_not_archived()
            contact.link_to(cmd.client_id, meta.context())
            return Decision(contact, [contact])

        return self.execute(meta, decide)

    def unlink_contact(self, contact_id: UUID, meta: CommandMeta) -> Accepted:
        def decide() -> Decision:
            contact = self.load_record(Contact, contact_id, meta)
            if contact.client_id is not None:
                client = self.find(Client, contact.client_id)
                if client is not None and client.primary_contact_id == contact.id:
                    raise RuleBroken(
                        f"Contact {contact.id} is the primary contact of client {client.id}; "
                        "set another primary contact first."
                    )
            contact.unlink(meta.context())
            return Decision(contact, [contact])

        return self.execute(meta, decide)

    def archive_contact(self, contact_id: UUID, meta: CommandMeta) -> Accepted:
        return self.on_record(Contact, contact_id, meta, lambda c: c.archive(meta.context()))

    def restore_contact(self, contact_id: UUID, meta: CommandMeta) -> Accepted:
        return self.on_record(Contact, contact_id, meta, lambda c: c.restore(meta.context()))

    # --- deals ---------------------------------------------------------------------------

    def open_deal(self, cmd: models.OpenDeal, meta: CommandMeta) -> Accepted:
        def decide() -> Decision:
            loaded = self.load_together(
                [
                    cmd.client_id,
                    *cmd.stakeholder_contact_ids,
                    Pipeline.id_for(meta.organization_id, cmd.pipeline_id),
                ]
            )
            self.load_record(
                Client, cmd.client_id, meta, for_field="client_id", loaded=loaded
            ).check_not_archived()
            self._check_contacts(
                cmd.stakeholder_contact_ids, meta, "stakeholder_contact_ids", loaded=loaded
            )
            pipeline, defined = self.load_pipeline(
                meta, cmd.pipeline_id, for_field="pipeline_id", loaded=loaded
            )
            deal = Deal.open(
                name=cmd.name,
                client_id=cmd.client_id,
                value=cmd.value,
                currency=cmd.currency,
                expected_close_date=cmd.expected_close_date,
                pipeline=pipeline.definition,
                probability=cmd.probability,
                owner_id=cmd.owner_id,
                source=cmd.source,
                competitor=cmd.competitor,
                notes=cmd.notes,
                stakeholder_contact_ids=cmd.stakeholder_contact_ids,
                stakeholder_user_ids=cmd.stakeholder_user_ids,
                context=meta.context(),
            )
            return Decision(deal, [deal, *defined], created=True)

        return self.execute(meta, decide)

    def change_stage(self, deal_id: UUID, cmd: models.ChangeStage, meta: CommandMeta) -> Accepted:
        return self._on_owned_deal_in_pipeline(
            deal_id,
            meta,
            lambda d, p: d.change_stage(cmd.stage, cmd.probability, meta.context(), pipeline=p),
        )

    def change_deal_value(
        self, deal_id: UUID, cmd: models.ChangeDealValue, meta: CommandMeta
    ) -> Accepted:
        return self._on_owned_deal(
            deal_id, meta, lambda d: d.change_value(cmd.value, cmd.currency, meta.context())
        )

    def change_expected_close_date(
        self, deal_id: UUID, cmd: models.ChangeExpectedCloseDate, meta: CommandMeta
    ) -> Accepted:
        return self._on_owned_deal(
            deal_id,
            meta,
            lambda d: d.change_expected_close_date(cmd.expected_close_date, meta.context()),
        )

    def change_probability(
        self, deal_id: UUID, cmd: models.ChangeProbability, meta: CommandMeta
    ) -> Accepted:
        return self._on_owned_deal(
            deal_id, meta, lambda d: d.change_probability(cmd.probability, meta.context())
        )

    def reassign_deal(self, deal_id: UUID, cmd: models.ReassignDeal, meta: CommandMeta) -> Accepted:
        return self.on_record(
            Deal, deal_id, meta, lambda d: d.reassign(cmd.owner_id, meta.context())
        )

    def change_stakeholders(
        self, deal_id: UUID, cmd: models.ChangeStakeholders, meta: CommandMeta
    ) -> Accepted:
        def decide(deal: Deal) -> None:
            self._check_contacts(cmd.contact_ids, meta, "contact_ids")
            deal.change_stakeholders(cmd.contact_ids, cmd.user_ids, meta.context())

        return self._on_owned_deal(deal_id, meta, decide)

    def change_deal_details(
        self, deal_id: UUID, cmd: models.ChangeDealDetails, meta: CommandMeta
    ) -> Accepted:
        changes = cmd.model_dump(exclude_unset=True, exclude={"occurred_at"})
        return self._on_owned_deal(
            deal_id, meta, lambda d: d.change_details(changes, meta.context())
        )

    def win_deal(self, deal_id: UUID, meta: CommandMeta) -> Accepted:
        return self._on_owned_deal_in_pipeline(
            deal_id, meta, lambda d, p: d.win(meta.context(), pipeline=p)
        )

    def lose_deal(self, deal_id: UUID, cmd: models.LoseDeal, meta: CommandMeta) -> Accepted:
        return self._on_owned_deal_in_pipeline(
            deal_id,
            meta,
            lambda d, p: d.lose(cmd.reason, cmd.competitor, meta.context(), pipeline=p),
        )

    def reopen_deal(self, deal_id: UUID, cmd: models.ReopenDeal, meta: CommandMeta) -> Accepted:
        return self._on_owned_deal_in_pipeline(
            deal_id, meta, lambda d, p: d.reopen(cmd.stage, meta.context(), pipeline=p)
        )

    def move_deal_to_pipeline(
        self, deal_id: UUID, cmd: models.MoveDealToPipeline, meta: CommandMeta
    ) -> Accepted:
        def decide() -> Decision:
            loaded = self.load_together(
                [deal_id, Pipeline.id_for(meta.organization_id, cmd.pipeline_id)]
            )
            deal = self.load_record(Deal, deal_id, meta, loaded=loaded)
            self._check_may_change(deal, meta)
            target, defined = self.load_pipeline(
                meta, cmd.pipeline_id, for_field="pipeline_id", loaded=loaded
            )
            deal.move_to_pipeline(target.definition, cmd.stage, cmd.probability, meta.context())
            return Decision(deal, [deal, *defined])

        return self.execute(meta, decide)

    def archive_deal(self, deal_id: UUID, meta: CommandMeta) -> Accepted:
        return self.on_record(Deal, deal_id, meta, lambda d: d.archive(meta.context()))

    # --- the load → decide → save cycle --------------------------------------------------

    def on_record(
        self,
        aggregate_type: type[TAggregate],
        record_id: UUID,
        meta: CommandMeta,
        command: Callable[[TAggregate], None],
    ) -> Accepted:
        """Run a command that changes one record."""

        def decide() -> Decision:
            record = self.load_record(aggregate_type, record_id, meta)
            command(record)
            return Decision(record, [record])

        return self.execute(meta, decide)

    def _on_owned_deal(
        self, deal_id: UUID, meta: CommandMeta, command: Callable[[Deal], None]
    ) -> Accepted:
        """Run a command that changes a deal: ADMIN any deal, MANAGER only their own."""

        def checked(deal: Deal) -> None:
            self._check_may_change(deal, meta)
            command(deal)

        return self.on_record(Deal, deal_id, meta, checked)

    def _on_owned_deal_in_pipeline(
        self,
        deal_id: UUID,
        meta: CommandMeta,
        command: Callable[[Deal, PipelineDefinition], None],
    ) -> Accepted:
        """Run a deal command that decides on the deal's pipeline (its stages), read in the
        deal's query when the organization's deals used it lately."""

        def decide() -> Decision:
            in_use = self.pipelines_in_use.of(meta.organization_id)
            loaded = self.load_together([deal_id, *in_use])
            deal = self.load_record(Deal, deal_id, meta, loaded=loaded)
            self._check_may_change(deal, meta)
            pipeline, defined = self.load_pipeline(
                meta, deal.pipeline_id, for_field="pipeline_id", loaded=loaded
            )
            command(deal, pipeline.definition)
            return Decision(deal, [deal, *defined])

        return self.execute(meta, decide)

    @staticmethod
    def _check_may_change(deal: Deal, meta: CommandMeta) -> None:
        if not may_change_deal(meta.role, meta.actor_id, deal.owner_id):
            raise Forbidden(
                f"Role {meta.role.value} may not change deal {deal.id}: "
                "a MANAGER changes only the deals they own."
            )

    def load_pipeline(
        self,
        meta: CommandMeta,
        pipeline_id: str,
        for_field: str | None = None,
        *,
        loaded: LoadedRecords | None = None,
    ) -> tuple[Pipeline, list[Pipeline]]:
        """The organization's pipeline ``pipeline_id``, and the list of it if it is new.

        Organizations created before pipelines were records have no ``default`` one yet: it
        is defined on first use, to be saved with the command (the second item). Without
        ``for_field`` the pipeline is the command's target (404, If-Match). Read from
        ``loaded`` when that query asked for it.
        """
        record_id = Pipeline.id_for(meta.organization_id, pipeline_id)
        pipeline = self._find_in(loaded, Pipeline, record_id)
        if pipeline is None and pipeline_id == DEFAULT_PIPELINE_ID:
            pipeline = Pipeline.default(self._organization_start(meta))
            return pipeline, [pipeline]
        if pipeline is None or pipeline.organization_id != meta.organization_id:
            raise RecordNotFound("pipeline", pipeline_id, field=for_field)
        expected = meta.expected_version
        if for_field is None and expected is not None and pipeline.version != expected:
            raise StaleVersion("pipeline", expected, pipeline.version)
        self.pipelines_in_use.used(meta.organization_id, record_id)
        return pipeline, []

    def _organization_start(self, meta: CommandMeta) -> EventContext:
        """The command's context dated back to its organization's creation (unless the
        command itself is dated earlier): the default pipeline has been there all along."""
        context = meta.context()
        organization = self.find(Organization, meta.organization_id)
        if organization is None:
            return context
        return replace(context, occurred_at=min(context.occurred_at, organization.created_on))

    def execute(self, meta: CommandMeta, decide: Callable[[], Decision]) -> Accepted:
        """Decide and save; on a conflicting save, decide again on fresh state."""
        if meta.idempotency is not None and (answer := self._first_answer(meta)) is not None:
            return answer
        for _ in range(MAX_ATTEMPTS):
            decision = decide()
            record_type = RECORD_TYPES[type(decision.record)]
            answer_record = self._answer_record(meta, decision, record_type)
            try:
                recordings = self.save(*decision.changed, *answer_record)
            except IntegrityError:
                if meta.idempotency is not None and (answer := self._first_answer(meta)):
                    return answer
                if meta.expected_version is not None:
                    raise StaleVersion(record_type, meta.expected_version, None) from None
                continue
            position = max(r.notification.id for r in recordings)
            if self.on_saved is not None:
                self.on_saved(position, decision.changed)
            return Accepted(
                record_type,
                decision.record.id,
                decision.record.version,
                position,
                created=decision.created,
            )
        raise ConcurrentChange(record_type)

    def _answer_record(
        self, meta: CommandMeta, decision: Decision, record_type: str
    ) -> list[Aggregate]:
        if meta.idempotency is None:
            return []
        return [
            IdempotentCommand(
                organization_id=meta.organization_id,
                key=meta.idempotency.key,
                fingerprint=meta.idempotency.fingerprint,
                status_code=201 if decision.created else 200,
                record_type=record_type,
                record_id=decision.record.id,
                record_version=decision.record.version,
            )
        ]

    def _first_answer(self, meta: CommandMeta) -> Accepted | None:
        assert meta.idempotency is not None
        answer_id = IdempotentCommand.id_for(meta.organization_id, meta.idempotency.key)
        answer = self.find(IdempotentCommand, answer_id)
        if answer is None:
            return None
        if answer.fingerprint != meta.idempotency.fingerprint:
            raise IdempotencyKeyReused(meta.idempotency.key)
        return Accepted(
            answer.record_type,
            answer.record_id,
            answer.record_version,
            position=self.position_of(answer_id, 1) or 0,
            created=answer.status_code == 201,
            replayed=True,
        )

    def load_record(
        self,
        aggregate_type: type[TAggregate],
        record_id: UUID,
        meta: CommandMeta,
        for_field: str | None = None,
        *,
        loaded: LoadedRecords | None = None,
    ) -> TAggregate:
        """Load a record of the caller's organization (from ``loaded`` when that query asked
        for it), checking If-Match on the target."""
        record = self._find_in(loaded, aggregate_type, record_id)
        if record is None or record.organization_id != meta.organization_id:
            raise RecordNotFound(RECORD_TYPES[aggregate_type], record_id, field=for_field)
        expected = meta.expected_version
        if for_field is None and expected is not None and record.version != expected:
            raise StaleVersion(RECORD_TYPES[aggregate_type], expected, record.version)
        return record

    def find(self, aggregate_type: type[TAny], record_id: UUID) -> TAny | None:
        """The aggregate with this id if it is an ``aggregate_type``, else None."""
        try:
            record: object = self.repository.get(record_id, projector_func=mutate_in_turn)
        except AggregateNotFoundError:
            return None
        return record if isinstance(record, aggregate_type) else None

    def _find_in(
        self, loaded: LoadedRecords | None, aggregate_type: type[TAny], record_id: UUID
    ) -> TAny | None:
        """:meth:`find`, answered by ``loaded`` when that query asked for the record."""
        if loaded is not None and loaded.holds(record_id):
            return loaded.get(aggregate_type, record_id)
        return self.find(aggregate_type, record_id)

    def load_together(self, record_ids: Iterable[UUID]) -> LoadedRecords:
        """The records with these ids, read in one query."""
        asked = frozenset(record_ids)
        to_domain_event = self.mapper.to_domain_event
        found = {
            record_id: mutate_in_turn(None, map(to_domain_event, events))
            for record_id, events in self.select_events_of(asked).items()
        }
        return LoadedRecords(asked, found)

    def _claim_email(self, contact: Contact, email: str, meta: CommandMeta) -> EmailClaim:
        claim_id = EmailClaim.id_for(meta.organization_id, email)
        claim: EmailClaim | None = self.find(EmailClaim, claim_id)
        if claim is None:
            return EmailClaim(email=email, contact_id=contact.id, context=meta.context())
        claim.claim_for(contact.id, meta.context())
        return claim

    def _check_contacts(
        self,
        contact_ids: list[UUID],
        meta: CommandMeta,
        field: str,
        *,
        loaded: LoadedRecords | None = None,
    ) -> None:
        for contact_id in contact_ids:
            self.load_record(Contact, contact_id, meta, for_field=field, loaded=loaded)


def mutate_in_turn(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's ``project_aggregate`` without its per-event runtime protocol check
    (an ``isinstance`` against a Protocol costs more than the mutation it guards)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate
