"""A seeded random sales history, planned as plain facts and told through the command API.

:func:`plan_history` draws several hundred deals over eighteen months of business time: deals
opened, moved forward and back through their pipeline (re-entering stages), revalued (also into
another currency), re-dated, reassigned, won, lost with reasons and competitors, reopened and
archived, for clients whose category changes along the way. Every step is a :class:`Fact`: what
happened, to which record, at which business instant and with which outcome — the only input of
the independent computation in :mod:`tests.analytics.oracle`, which never reads a read model.

:func:`tell` sends the facts as commands with their ``occurred_at`` (in various UTC offsets).
Phase 1 is told in business-time order, like a live CRM; phase 2 is an import told afterwards
over HTTP, record by record in random order: whole deals and the tails of others, all with
past business times, so the log holds old events after newer ones.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient

from aggregates.access import Role
from commands import models
from commands.service import Accepted, CommandMeta, CrmApplication
from crm.identity import DEFAULT_ADMIN_ID, DEFAULT_ORGANIZATION_ID

START = datetime(2025, 1, 1, tzinfo=UTC)
END = START + timedelta(days=540)  # 2026-06-25: eighteen months of business time
OWNERS = ("ana", "ben", "carla", "dmitri", "eve")
SOURCES = ("web", "referral", "event", "outbound", "partner")
LOST_REASONS = ("price", "timing", "features", "no decision", "went silent")
COMPETITORS = ("Globex", "Initech", "Umbrella", "Hooli")
CATEGORIES = ("active_client", "prospect", "past_client", "partner", "supplier")
CURRENCIES = ("EUR", "USD")
# Business times are instants: they are told with various UTC offsets.
OFFSETS = (
    UTC,
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=-5)),
    UTC,
    timezone(timedelta(hours=5, minutes=30)),
)
IMPORTED_SHARE = 0.15  # deals told only in phase 2
TAIL_IMPORTED_SHARE = 0.15  # deals whose later facts are told in phase 2

# Hooks for features that landed beside these tests. TWO_PIPELINES: a second pipeline
# (POST /pipelines) with deals opened in it and moved between pipelines (DealMovedToPipeline);
# needs the analytics to read the organization's own pipelines. EXCHANGE_RATES: USD rates
# (PUT /exchange-rates/USD) and every money figure also checked in the base currency. Turn a
# hook off to run the suite on a tree without the feature.
TWO_PIPELINES = True
EXCHANGE_RATES = True
BASE_CURRENCY = "EUR"  # the first-run organization's


@dataclass(frozen=True)
class Stage:
    id: str
    name: str
    probability: int
    kind: str  # open, won, lost


@dataclass(frozen=True)
class PipelineShape:
    id: str
    name: str
    stages: tuple[Stage, ...]

    @property
    def open_stages(self) -> list[Stage]:
        return [stage for stage in self.stages if stage.kind == "open"]

    def of_kind(self, kind: str) -> Stage:
        return next(stage for stage in self.stages if stage.kind == kind)

    def stage(self, stage_id: str) -> Stage:
        return next(stage for stage in self.stages if stage.id == stage_id)


# SPEC §3: the default pipeline's stages, in order, with their default probabilities.
DEFAULT_PIPELINE = PipelineShape(
    "default",
    "Sales",
    (
        Stage("lead", "Lead", 10, "open"),
        Stage("qualified", "Qualified", 25, "open"),
        Stage("proposal", "Proposal", 50, "open"),
        Stage("negotiation", "Negotiation", 75, "open"),
        Stage("closed_won", "Closed Won", 100, "won"),
        Stage("closed_lost", "Closed Lost", 0, "lost"),
    ),
)
ENTERPRISE_PIPELINE = PipelineShape(
    "enterprise",
    "Enterprise",
    (
        Stage("discovery", "Discovery", 15, "open"),
        Stage("pilot", "Pilot", 40, "open"),
        Stage("contract", "Contract", 85, "open"),
        Stage("dropped", "Dropped", 0, "lost"),
        Stage("signed", "Signed", 100, "won"),
    ),
)


@dataclass(frozen=True)
class Fact:
    """One thing that happened to one record at one business instant, with its outcome.

    ``data`` holds the resulting values (the probability a stage move gave the deal, the stage
    a reopen put it in), so the oracle needs no default rule of the application's.
    """

    seq: int  # order of the plan; increasing within a record
    at: datetime
    record: str  # the plan's name for the record: client-03, deal-117, pipeline-enterprise
    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    phase: int = 1  # 1: told live; 2: imported afterwards with its past business time


@dataclass
class DealPlan:
    """The planner's running picture of one deal, to draw only commands the deal accepts."""

    pipeline: PipelineShape
    stage: str
    last_open_stage: str
    owner: str | None
    value: Decimal
    currency: str
    status: str = "open"


def pipelines() -> list[PipelineShape]:
    return [DEFAULT_PIPELINE, ENTERPRISE_PIPELINE] if TWO_PIPELINES else [DEFAULT_PIPELINE]


def plan_history(
    seed: int, deals: int = 300, clients: int = 40, same_instant_share: float = 0.0
) -> list[Fact]:
    """Every fact of a random history, in plan order (each record's facts in business order).

    ``same_instant_share``: how often a deal's next step shares its previous step's business
    instant (an import that opens a deal straight into a later stage, say).
    """
    rng = random.Random(seed)
    drafts: list[tuple[datetime, str, str, dict[str, Any]]] = []
    for shape in pipelines():
        drafts.append(
            (START - timedelta(days=90), f"pipeline-{shape.id}", "pipeline", definition_of(shape))
        )
    if EXCHANGE_RATES:
        drafts += _exchange_rates(rng)
    client_names = [f"client-{n:02d}" for n in range(clients)]
    for n, name in enumerate(client_names):
        drafts += _client(rng, name, START - timedelta(days=60, hours=-n))
    for n in range(deals):
        drafts += _deal(rng, f"deal-{n:03d}", rng.choice(client_names), same_instant_share)
    by_record: dict[str, list[Fact]] = defaultdict(list)
    for seq, (at, record, kind, data) in enumerate(drafts):
        by_record[record].append(Fact(seq, at, record, kind, data))
    facts: list[Fact] = []
    for record, planned in by_record.items():
        facts += _phased(rng, record, planned)
    return sorted(facts, key=lambda fact: fact.seq)


def definition_of(shape: PipelineShape) -> dict[str, Any]:
    return {
        "id": shape.id,
        "name": shape.name,
        "stages": [
            {"id": s.id, "name": s.name, "probability": s.probability, "kind": s.kind}
            for s in shape.stages
        ],
    }


# --- facts of hand-written histories ----------------------------------------------------


def opened_in_lead(
    client: str, name: str, value: Decimal, expected_close_date: date
) -> dict[str, object]:
    """An ``opened`` fact's data: a EUR deal of Ana's from the web, in the default pipeline's
    Lead at 10 %."""
    return {
        "name": name,
        "client": client,
        "value": value,
        "currency": "EUR",
        "expected_close_date": expected_close_date,
        "pipeline": "default",
        "stage": "lead",
        "probability": 10,
        "given_probability": None,
        "owner": "ana",
        "source": "web",
        "competitor": None,
    }


def moved(stage: str, probability: int) -> dict[str, object]:
    """A ``stage`` fact's data."""
    return {"stage": stage, "probability": probability, "given_probability": None}


def lost(reason: str) -> dict[str, object]:
    """A ``lost`` fact's data: into the default pipeline's Closed Lost, no competitor."""
    return {"stage": "closed_lost", "reason": reason, "competitor": None}


def _phased(rng: random.Random, record: str, facts: list[Fact]) -> list[Fact]:
    """Mark a whole deal, or the tail of a deal or client, as imported later (phase 2)."""
    if record.startswith("pipeline") or record == "exchange-rates":
        return facts
    draw = rng.random()
    if record.startswith("deal") and draw < IMPORTED_SHARE:
        cut = 0
    elif draw < IMPORTED_SHARE + TAIL_IMPORTED_SHARE and len(facts) > 1:
        cut = rng.randrange(1, len(facts))
    else:
        cut = len(facts)
    return [
        fact if n < cut else Fact(fact.seq, fact.at, fact.record, fact.kind, fact.data, phase=2)
        for n, fact in enumerate(facts)
    ]


def _instant(rng: random.Random, start: datetime, span: timedelta) -> datetime:
    """A random instant in [start, start + span), whole seconds or, sometimes, microseconds."""
    at = start + timedelta(seconds=rng.randrange(int(span.total_seconds())))
    if rng.random() < 0.1:
        at += timedelta(microseconds=rng.randrange(1, 1_000_000))
    return at


def _gap(rng: random.Random, same_instant_share: float) -> timedelta:
    if rng.random() < same_instant_share:
        return timedelta(0)
    return timedelta(hours=1) + timedelta(seconds=int(rng.expovariate(1 / (9 * 86_400))))


def _money(rng: random.Random) -> Decimal:
    if rng.random() < 0.02:
        return Decimal("0.00")
    return Decimal(rng.randrange(10_000, 25_000_000)) / 100


def _client(
    rng: random.Random, name: str, registered_at: datetime
) -> list[tuple[datetime, str, str, dict[str, Any]]]:
    category = rng.choice(CATEGORIES)
    drafts = [(registered_at, name, "client", {"name": name, "category": category})]
    at = registered_at
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        at = _instant(rng, at + timedelta(days=1), timedelta(days=200))
        if at >= END:
            break
        category = rng.choice([c for c in CATEGORIES if c != category])
        drafts.append((at, name, "category", {"category": category}))
    return drafts


def _exchange_rates(rng: random.Random) -> list[tuple[datetime, str, str, dict[str, Any]]]:
    """What 1 USD is worth in EUR (the base currency), set each month from February 2025 —
    USD deals closed in January 2025 have no rate — and one rate corrected months later."""
    drafts = []
    day = date(2025, 2, 1)
    while day < END.date():
        rate = Decimal(rng.randrange(8_500, 9_800)) / 10_000
        at = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(
            hours=rng.randrange(1, 48)
        )
        drafts.append(
            (at, "exchange-rates", "rate", {"currency": "USD", "rate": rate, "from": day})
        )
        day = (day + timedelta(days=32)).replace(day=1)
    correction = {"currency": "USD", "rate": Decimal("0.912345"), "from": date(2025, 6, 1)}
    drafts.append((END - timedelta(days=10), "exchange-rates", "rate", correction))
    return drafts


def _deal(
    rng: random.Random, name: str, client: str, same_instant_share: float
) -> list[tuple[datetime, str, str, dict[str, Any]]]:
    shape = rng.choice(pipelines())
    first = shape.open_stages[0]
    at = _instant(rng, START, END - START - timedelta(days=5))
    probability = rng.randrange(5, 96) if rng.random() < 0.15 else None
    plan = DealPlan(
        pipeline=shape,
        stage=first.id,
        last_open_stage=first.id,
        owner=rng.choice((*OWNERS, None)) if rng.random() < 0.9 else None,
        value=_money(rng),
        currency=rng.choice(CURRENCIES),
    )
    opened = {
        "name": name,
        "client": client,
        "value": plan.value,
        "currency": plan.currency,
        "expected_close_date": at.date() + timedelta(days=rng.randrange(14, 200)),
        "pipeline": shape.id,
        "stage": first.id,
        "probability": first.probability if probability is None else probability,
        "given_probability": probability,
        "owner": plan.owner,
        "source": rng.choice((*SOURCES, None)),
        "competitor": rng.choice(COMPETITORS) if rng.random() < 0.2 else None,
    }
    drafts = [(at, name, "opened", opened)]
    while True:
        at += _gap(rng, same_instant_share)
        if at >= END:
            return drafts
        step = _step(rng, plan)
        if step is None:
            return drafts
        kind, data = step
        drafts.append((at, name, kind, data))
        if kind == "archived":
            return drafts


def _step(rng: random.Random, plan: DealPlan) -> tuple[str, dict[str, Any]] | None:
    """The deal's next command, drawn among those its state allows; None: nothing more."""
    if plan.status != "open":
        choices = ("reopened", "archived", "reassigned", "details", None)
        choice = rng.choices(choices, (22, 4, 4, 3, 67))[0]
        return None if choice is None else _apply(rng, plan, choice)
    open_ids = [s.id for s in plan.pipeline.open_stages]
    here = open_ids.index(plan.stage)
    weights = {
        "forward": 30 if here < len(open_ids) - 1 else 0,
        "backward": 8 if here > 0 else 0,
        "value": 6,
        "close_date": 5,
        "probability": 4,
        "reassigned": 5,
        "details": 4,
        "won": 2 + 3 * here,
        "lost": 5,
        "archived": 1,
        "moved": 3 if TWO_PIPELINES else 0,
        "idle": 3,
    }
    choice = rng.choices(list(weights), list(weights.values()))[0]
    return None if choice == "idle" else _apply(rng, plan, choice)


def _apply(rng: random.Random, plan: DealPlan, choice: str) -> tuple[str, dict[str, Any]]:
    open_ids = [s.id for s in plan.pipeline.open_stages]
    if choice in ("forward", "backward"):
        here = open_ids.index(plan.stage)
        if choice == "forward":
            to = open_ids[min(here + rng.choice((1, 1, 1, 2)), len(open_ids) - 1)]
        else:
            to = open_ids[rng.randrange(0, here)]
        given_probability = rng.randrange(0, 101) if rng.random() < 0.1 else None
        plan.stage = plan.last_open_stage = to
        default = plan.pipeline.stage(to).probability
        return "stage", {
            "stage": to,
            "probability": default if given_probability is None else given_probability,
            "given_probability": given_probability,
        }
    if choice == "value":
        plan.value = _money(rng)
        if rng.random() < 0.25:
            plan.currency = next(c for c in CURRENCIES if c != plan.currency)
        return "value", {"value": plan.value, "currency": plan.currency}
    if choice == "close_date":
        return "close_date", {"expected_close_date": date(2025, 1, 15) + _days(rng, 600)}
    if choice == "probability":
        return "probability", {"probability": rng.randrange(0, 101)}
    if choice == "reassigned":
        owner = rng.choice([o for o in (*OWNERS, None) if o != plan.owner])
        plan.owner = owner
        return "reassigned", {"owner": owner}
    if choice == "details":
        if rng.random() < 0.6:
            return "details", {"source": rng.choice(SOURCES)}
        return "details", {"competitor": rng.choice(COMPETITORS)}
    if choice == "won":
        plan.status, plan.stage = "won", plan.pipeline.of_kind("won").id
        return "won", {"stage": plan.stage}
    if choice == "lost":
        plan.status, plan.stage = "lost", plan.pipeline.of_kind("lost").id
        competitor = rng.choice(COMPETITORS) if rng.random() < 0.6 else None
        return "lost", {
            "stage": plan.stage,
            "reason": rng.choice(LOST_REASONS),
            "competitor": competitor,
        }
    if choice == "reopened":
        given_stage = rng.choice(open_ids) if rng.random() < 0.5 else None
        # without a stage, a deal reopens in its last open stage
        back_to = plan.last_open_stage if given_stage is None else given_stage
        plan.status, plan.stage, plan.last_open_stage = "open", back_to, back_to
        return "reopened", {
            "stage": back_to,
            "stage_given": given_stage,
            "probability": plan.pipeline.stage(back_to).probability,
        }
    if choice == "moved":
        target = next(p for p in pipelines() if p.id != plan.pipeline.id)
        entry = rng.choice(target.open_stages)
        plan.pipeline, plan.stage, plan.last_open_stage = target, entry.id, entry.id
        return "moved", {
            "pipeline": target.id,
            "stage": entry.id,
            "probability": entry.probability,
        }
    assert choice == "archived", choice
    return "archived", {}


def _days(rng: random.Random, up_to: int) -> timedelta:
    return timedelta(days=rng.randrange(up_to))


# --- telling the facts through the command API ------------------------------------------------


@dataclass
class Told:
    """What telling the facts gave back: each planned record's id, and the log's head."""

    ids: dict[str, str] = field(default_factory=dict)
    position: int = 0


def tell(api: TestClient, facts: Iterable[Fact], told: Told, *, over_http: bool = True) -> Told:
    """Send each fact as its command, in the order given; remember ids and the last position.

    ``over_http=False`` runs the same commands on the service's application in-process —
    faster for the bulk of a history; pipelines and exchange rates still go over HTTP.
    """
    for fact in facts:
        if fact.kind == "pipeline" and fact.data["id"] == DEFAULT_PIPELINE.id:
            continue  # every organization has it: defined on first use
        method, path, body = command_for(fact, told.ids)
        body["occurred_at"] = fact.at.astimezone(OFFSETS[fact.seq % len(OFFSETS)]).isoformat()
        if over_http or fact.kind in ("pipeline", "rate"):
            response = api.request(method, path, json=body)
            assert response.status_code in (200, 201), (fact, response.text)
            answer = response.json()
            created, record_id, position = (
                response.status_code == 201,
                answer["id"],
                answer["position"],
            )
        else:
            accepted = run_in_process(api.app.state.commands, fact, told.ids, body)  # type: ignore[attr-defined]
            created, record_id, position = (
                accepted.created,
                str(accepted.record_id),
                accepted.position,
            )
        if created:
            told.ids[fact.record] = record_id
        told.position = max(told.position, position)
    return told


def run_in_process(
    app: CrmApplication, fact: Fact, ids: dict[str, str], body: dict[str, Any]
) -> Accepted:
    """The command of a fact (its HTTP body) on the application, as the first-run admin."""
    occurred_at = models.Command.model_validate(
        {"occurred_at": body.pop("occurred_at")}
    ).occurred_at
    meta = CommandMeta(
        organization_id=DEFAULT_ORGANIZATION_ID,
        actor_id=DEFAULT_ADMIN_ID,
        role=Role.ADMIN,
        occurred_at=occurred_at,
    )
    record = UUID(ids[fact.record]) if fact.record in ids else None
    match fact.kind:
        case "client":
            return app.register_client(models.RegisterClient.model_validate(body), meta)
        case "opened":
            return app.open_deal(models.OpenDeal.model_validate(body), meta)
        case "won":
            return app.win_deal(_id(record), meta)
        case "archived":
            return app.archive_deal(_id(record), meta)
    command, model = IN_PROCESS[fact.kind]
    accepted: Accepted = command(app, _id(record), model.model_validate(body), meta)
    return accepted


def _id(record: UUID | None) -> UUID:
    assert record is not None, "a record's first fact creates it"
    return record


IN_PROCESS: dict[str, tuple[Any, type[models.Command]]] = {
    "category": (CrmApplication.change_client_status, models.ChangeClientStatus),
    "stage": (CrmApplication.change_stage, models.ChangeStage),
    "value": (CrmApplication.change_deal_value, models.ChangeDealValue),
    "close_date": (CrmApplication.change_expected_close_date, models.ChangeExpectedCloseDate),
    "probability": (CrmApplication.change_probability, models.ChangeProbability),
    "reassigned": (CrmApplication.reassign_deal, models.ReassignDeal),
    "details": (CrmApplication.change_deal_details, models.ChangeDealDetails),
    "lost": (CrmApplication.lose_deal, models.LoseDeal),
    "reopened": (CrmApplication.reopen_deal, models.ReopenDeal),
    "moved": (CrmApplication.move_deal_to_pipeline, models.MoveDealToPipeline),
}


def live_order(facts: Sequence[Fact]) -> list[Fact]:
    """Phase 1 as a live CRM records it: in business-time order."""
    return sorted((f for f in facts if f.phase == 1), key=lambda f: (f.at, f.seq))


def import_order(facts: Sequence[Fact], seed: int) -> list[Fact]:
    """Phase 2 as an import sends it: record after record in random order, each in order."""
    by_record: dict[str, list[Fact]] = defaultdict(list)
    for fact in facts:
        if fact.phase == 2:
            by_record[fact.record].append(fact)
    records = sorted(by_record)
    random.Random(seed).shuffle(records)
    return [fact for record in records for fact in sorted(by_record[record], key=lambda f: f.seq)]


def command_for(fact: Fact, ids: dict[str, str]) -> tuple[str, str, dict[str, Any]]:
    """The HTTP command that records a fact: method, path and body (without occurred_at)."""
    data = fact.data
    deal = f"/deals/{ids.get(fact.record)}"
    match fact.kind:
        case "pipeline":
            return "POST", "/pipelines", {k: data[k] for k in ("id", "name", "stages")}
        case "rate":
            body = {"rate_to_base": str(data["rate"]), "effective_from": data["from"].isoformat()}
            return "PUT", f"/exchange-rates/{data['currency']}", body
        case "client":
            return "POST", "/clients", {"name": data["name"], "category": data["category"]}
        case "category":
            return "POST", f"/clients/{ids[fact.record]}/status", {"category": data["category"]}
        case "opened":
            body = {
                "name": data["name"],
                "client_id": ids[data["client"]],
                "value": str(data["value"]),
                "currency": data["currency"],
                "expected_close_date": data["expected_close_date"].isoformat(),
                "pipeline_id": data["pipeline"],
                "owner_id": data["owner"],
                "source": data["source"],
                "competitor": data["competitor"],
            }
            if data["given_probability"] is not None:
                body["probability"] = data["given_probability"]
            return "POST", "/deals", body
        case "stage":
            body = {"stage": data["stage"]}
            if data["given_probability"] is not None:
                body["probability"] = data["given_probability"]
            return "POST", f"{deal}/stage", body
        case "value":
            return (
                "PUT",
                f"{deal}/value",
                {"value": str(data["value"]), "currency": data["currency"]},
            )
        case "close_date":
            date_ = data["expected_close_date"].isoformat()
            return "PUT", f"{deal}/expected-close-date", {"expected_close_date": date_}
        case "probability":
            return "PUT", f"{deal}/probability", {"probability": data["probability"]}
        case "reassigned":
            return "PUT", f"{deal}/owner", {"owner_id": data["owner"]}
        case "details":
            return "PATCH", deal, dict(data)
        case "won":
            return "POST", f"{deal}/win", {}
        case "lost":
            return (
                "POST",
                f"{deal}/lose",
                {"reason": data["reason"], "competitor": data["competitor"]},
            )
        case "reopened":
            body = {} if data["stage_given"] is None else {"stage": data["stage_given"]}
            return "POST", f"{deal}/reopen", body
        case "moved":
            return (
                "POST",
                f"{deal}/pipeline",
                {"pipeline_id": data["pipeline"], "stage": data["stage"]},
            )
        case "archived":
            return "POST", f"{deal}/archive", {}
    raise AssertionError(f"no command for {fact.kind}")
