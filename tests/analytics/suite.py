"""What the analytics tests share: a generated history told on a store, each analytics
endpoint beside its independent computation, and the instants worth asking about.

The history is told in two phases (see :mod:`tests.analytics.history`). Between them, once the
read models include phase 1, the figures as of a few past instants are read and kept, so a test
can check them against phase 1 replayed alone — and the figures read at the end against the
whole history, imported part included.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import cache, cached_property
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from crm.app import create_app
from tests.analytics.history import (
    BASE_CURRENCY,
    END,
    EXCHANGE_RATES,
    START,
    Fact,
    Told,
    import_order,
    live_order,
    plan_history,
    tell,
)
from tests.analytics.matching import mismatch
from tests.analytics.oracle import Json, Oracle, Query
from tests.stores import settings_for

SEED = 20250101
DEALS = 300
CROWDED_DEALS = 60


@dataclass(frozen=True)
class Probe:
    """One analytics request: its path, filters and extra parameters."""

    path: str
    query: Query
    extra: tuple[tuple[str, Any], ...] = ()

    def params(self) -> dict[str, Any]:
        return {**self.query.params(), **dict(self.extra)}


@dataclass
class GeneratedHistory:
    api: TestClient
    facts: list[Fact]
    told: Told
    before_import: list[tuple[Probe, Json]] = field(default_factory=list)

    @cached_property
    def oracle(self) -> Oracle:
        return oracle_of(self.facts)

    def read(self, probe: Probe) -> Json:
        """The answer once the read models include every told fact, with deals named by key."""
        response = self.api.get(
            probe.path, params={"min_position": self.told.position, **probe.params()}
        )
        assert response.status_code == 200, response.text
        return self.by_key(response.json())

    def by_key(self, answer: Json) -> Json:
        keys = {deal_id: key for key, deal_id in self.told.ids.items()}
        for visit in answer.get("visits", []):
            visit["deal_id"] = keys.get(visit["deal_id"], visit["deal_id"])
        return answer


def oracle_of(facts: list[Fact]) -> Oracle:
    """The independent computation over these facts, in the base currency too if reported."""
    return Oracle(facts, BASE_CURRENCY if EXCHANGE_RATES else None)


def import_probes() -> list[Probe]:
    """Figures read between the live phase and the import: as of instants the import reaches."""
    instants = [START + (END - START) * k / 5 for k in range(1, 5)]
    paths = ("/analytics/pipeline-value", "/analytics/win-rate", "/analytics/sales-cycle")
    probes = [Probe(path, Query(as_of=at)) for at in instants for path in paths]
    probes += [Probe("/analytics/conversion", Query(as_of=instants[2]))]
    probes += [Probe("/analytics/time-in-stage", Query(as_of=instants[1]))]
    return probes


@contextmanager
def told(
    store_kind: str, data_dir: Path, facts: list[Fact], probes: list[Probe]
) -> Iterator[GeneratedHistory]:
    """The facts told on a fresh store: the live phase in-process (fast), ``probes`` read,
    then the import over HTTP with its past ``occurred_at``."""
    with settings_for(store_kind, data_dir) as settings, TestClient(create_app(settings)) as api:
        signed_in(api)
        generated = GeneratedHistory(api, facts, Told())
        tell(api, live_order(facts), generated.told, over_http=False)
        generated.before_import = [(probe, generated.read(probe)) for probe in probes]
        tell(api, import_order(facts, SEED), generated.told)
        yield generated


def signed_in(api: TestClient) -> None:
    """Call the API as the first-run admin of the default organization."""
    token = api.app.state.service.first_run_token  # type: ignore[attr-defined]
    api.headers["Authorization"] = f"Bearer {token}"


ROTTING_DAYS = 20.0
ROTTING_STAGE_DAYS = {"lead": 10.0, "negotiation": 45.0}


@dataclass(frozen=True)
class Analytic:
    path: str
    expected: Callable[[Oracle, Query, datetime], Json]
    extra: tuple[tuple[str, object], ...] = ()
    runs_to_now: bool = False  # without as_of, a current visit counts up to the request
    unordered_visits: bool = False  # listed per deal in no promised order of deals

    def probe(self, query: Query) -> Probe:
        return Probe(self.path, query, self.extra)


def _thresholds(oracle: Oracle) -> dict[str, float]:
    thresholds = {
        stage.id: ROTTING_DAYS
        for shape in oracle.world(None).pipelines.values()
        for stage in shape.stages
    }
    return {**thresholds, **ROTTING_STAGE_DAYS}


@dataclass(frozen=True)
class WinLossBy:
    by: str

    def __call__(self, oracle: Oracle, query: Query, _: datetime) -> Json:
        return oracle.win_loss(query, self.by)


ANALYTICS: dict[str, Analytic] = {
    "pipeline value": Analytic("/analytics/pipeline-value", lambda o, q, _: o.pipeline_value(q)),
    "win rate": Analytic("/analytics/win-rate", lambda o, q, _: o.win_rate(q)),
    "average deal size": Analytic(
        "/analytics/average-deal-size", lambda o, q, _: o.average_deal_size(q)
    ),
    "sales cycle": Analytic("/analytics/sales-cycle", lambda o, q, _: o.sales_cycle(q)),
    "conversion": Analytic("/analytics/conversion", lambda o, q, _: o.conversion(q)),
    "time in stage": Analytic(
        "/analytics/time-in-stage", lambda o, q, now: o.time_in_stage(q, now), runs_to_now=True
    ),
    "visits": Analytic(
        "/analytics/time-in-stage/visits",
        lambda o, q, now: o.visits(q, now),
        (("limit", 10_000),),
        runs_to_now=True,
        unordered_visits=True,
    ),
    "rotting": Analytic(
        "/analytics/rotting",
        lambda o, q, now: o.rotting(q, _thresholds(o), now),
        (
            ("days", ROTTING_DAYS),
            ("stage_days", [f"{stage}:{days}" for stage, days in ROTTING_STAGE_DAYS.items()]),
        ),
        runs_to_now=True,
    ),
    "forecast": Analytic("/analytics/forecast", lambda o, q, _: o.forecast(q)),
    "salespeople": Analytic("/analytics/salespeople", lambda o, q, _: o.salespeople(q)),
    **{
        f"win-loss by {by}": Analytic("/analytics/win-loss", WinLossBy(by), (("by", by),))
        for by in ("lost_reason", "competitor", "source", "owner", "client_category")
    },
}


def check(history: GeneratedHistory, name: str, query: Query, oracle: Oracle | None = None) -> None:
    """The analytic read from the API equals the oracle's (``oracle``: another replay)."""
    problem = difference(history, name, query, oracle)
    assert problem is None, problem


def difference(
    history: GeneratedHistory, name: str, query: Query, oracle: Oracle | None = None
) -> str | None:
    analytic = ANALYTICS[name]
    before = datetime.now(UTC)
    answer = history.read(analytic.probe(query))
    took = (datetime.now(UTC) - before) / timedelta(days=1)
    tolerance = took + 1e-6 if analytic.runs_to_now and query.as_of is None else 1e-9
    expected = analytic.expected(oracle or history.oracle, query, before)
    if analytic.unordered_visits:
        for visits in (answer["visits"], expected["visits"]):
            visits.sort(key=lambda v: (v["pipeline_id"], v["deal_id"], v["visit_no"]))
    found = mismatch(answer, expected, "", tolerance)
    return None if found is None else f"{name} {query}: {found}"


@cache
def planned() -> tuple[Fact, ...]:
    """The facts of the generated history, known before any store is set up."""
    return tuple(plan_history(SEED, deals=DEALS))


@cache
def crowded() -> tuple[Fact, ...]:
    """A smaller history where a third of the deals' steps share the previous step's instant."""
    return tuple(plan_history(SEED + 1, deals=CROWDED_DEALS, clients=12, same_instant_share=0.3))


def fact_at(kind: str, near: datetime, phase: int | None = None) -> Fact:
    """The fact of a kind whose business time is nearest an instant."""
    candidates = [f for f in planned() if f.kind == kind and phase in (None, f.phase)]
    return min(candidates, key=lambda f: abs(f.at - near))


def instants() -> dict[str, datetime]:
    """Instants spread over the history, half of them exactly at an event's business time."""
    span = END - START
    chosen = {
        "before any deal": START - timedelta(days=1),
        "before the first exchange rate": datetime(2025, 1, 20, 12, tzinfo=UTC),
    }
    for k in range(1, 8):
        at = START + span * k / 8
        if k % 2:
            fact = min(planned(), key=lambda f: abs(f.at - at))
            chosen[f"at an event {k}/8 through"] = fact.at
        else:
            chosen[f"{k}/8 through"] = at
    middle = START + span / 2
    win = fact_at("won", middle)
    chosen["at a win"] = win.at
    chosen["a microsecond before that win"] = win.at - timedelta(microseconds=1)
    chosen["at a loss, asked at UTC-5"] = fact_at("lost", START + span / 3).at.astimezone(
        timezone(timedelta(hours=-5))
    )
    chosen["at a reopen"] = fact_at("reopened", START + span * 2 / 3).at
    chosen["at an archive"] = fact_at("archived", START + span / 4).at
    chosen["at an imported event"] = fact_at("stage", START + span * 3 / 8, phase=2).at
    chosen["after the last event"] = END + timedelta(days=30)
    return chosen
