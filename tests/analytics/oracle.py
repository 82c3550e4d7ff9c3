"""Every sales analytic of SPEC §5, computed independently from the generated facts.

Plain Python over :class:`tests.analytics.history.Fact` only: no read model, no projection,
no application code. :meth:`Oracle.world` replays the facts whose business time is at or before
an instant (all of them without one) into each deal's state and its stage visits; the analytics
are then straightforward loops over that state, with :mod:`statistics` for means, medians and
percentiles (linear interpolation between closest ranks, ``method="inclusive"``).

The answers have the shape of the read API's JSON (money as exact :class:`~decimal.Decimal`,
durations as float days, instants as datetimes, a mean of money as an exact
:class:`~fractions.Fraction`) with deals named by their plan key, for
:func:`tests.analytics.matching.assert_matches`.

Semantics follow SPEC §5 and the docstrings of ``projections/analytics.py``:

- deal figures read each deal as it stood at ``as_of`` (its pipeline, owner, stage, status) —
  the owner filter means the owner at that instant;
- "closed in the period": won or lost at ``as_of`` with its latest close in ``[from, to)``;
  archived closed deals still count; open pipeline figures leave archived deals out;
- pipeline value and forecast: the period filters the expected close date (a day is in the
  period when its midnight UTC is); salesperson performance's open pipeline ignores the period;
- stage visits (conversion, transitions, time in stage, visits, rotting): a visit runs from
  entering a stage until the deal leaves it or is archived; every close and reopen is a
  move; the period and the owner filter apply to the visit's entry (the owner then);
- conversion: of the deals with a visit of S entered in the period, those with any later
  visit (after their first such visit, up to ``as_of``) of a later open stage of the same
  pipeline or of its won stage — later in the deal's sequence of moves, which is later in
  business time except for moves recorded at the same instant.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from tests.analytics.history import Fact, PipelineShape, Stage

DAY = timedelta(days=1)
ONE_UNIT = Fraction(1, 10_000)  # of the fourth decimal place
Json = dict[str, Any]


@dataclass(frozen=True)
class Near:
    """An exact amount that a figure reported to four places may miss by up to ``within``."""

    value: Fraction
    within: Fraction


@dataclass(frozen=True)
class Query:
    """The filters every analytic takes."""

    pipeline: str | None = None
    owner: str | None = None
    period_from: datetime | None = None
    period_to: datetime | None = None
    as_of: datetime | None = None
    as_dates: bool = False  # send the instants (UTC midnights) as plain dates

    def params(self) -> dict[str, str]:
        iso = _day if self.as_dates else _iso
        named = {
            "pipeline": self.pipeline,
            "owner": self.owner,
            "from": iso(self.period_from),
            "to": iso(self.period_to),
            "as_of": iso(self.as_of),
        }
        return {name: value for name, value in named.items() if value is not None}

    def in_period(self, instant: datetime) -> bool:
        after_start = self.period_from is None or instant >= self.period_from
        return after_start and (self.period_to is None or instant < self.period_to)

    def day_in_period(self, day: date) -> bool:
        return self.in_period(datetime(day.year, day.month, day.day, tzinfo=UTC))


def _iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.isoformat().replace("+00:00", "Z")


def _day(midnight: datetime | None) -> str | None:
    if midnight is None:
        return None
    assert midnight == datetime.combine(midnight.date(), datetime.min.time(), tzinfo=UTC)
    return midnight.date().isoformat()


@dataclass
class Visit:
    number: int
    pipeline: str
    stage: str
    from_stage: str | None
    owner: str | None
    entered: datetime
    left: datetime | None = None


@dataclass
class Deal:
    key: str
    client: str
    pipeline: str
    stage: str
    probability: int
    value: Decimal
    currency: str
    owner: str | None
    source: str | None
    expected_close: date
    opened: datetime
    status: str = "open"
    archived: bool = False
    closed: datetime | None = None
    lost_reason: str | None = None
    lost_competitor: str | None = None
    visits: list[Visit] = field(default_factory=list)

    def enter(self, pipeline: str, stage: str, at: datetime) -> None:
        if self.visits:
            self.visits[-1].left = at
        self.visits.append(Visit(len(self.visits) + 1, pipeline, stage, self.stage, self.owner, at))
        self.pipeline, self.stage = pipeline, stage

    @property
    def cycle_days(self) -> float:
        assert self.closed is not None
        return (self.closed - self.opened) / DAY


@dataclass
class World:
    """Every record as it stood at one instant."""

    pipelines: dict[str, PipelineShape] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)
    deals: dict[str, Deal] = field(default_factory=dict)


def replay(facts: Iterable[Fact], as_of: datetime | None = None) -> World:
    """Fold the facts at or before ``as_of`` (all without it) in business-time order."""
    world = World()
    happened = (f for f in facts if as_of is None or f.at <= as_of)
    for fact in sorted(happened, key=lambda f: (f.at, f.seq)):
        fold(world, fact)
    return world


def fold(world: World, fact: Fact) -> None:
    data, at = fact.data, fact.at
    if fact.kind == "pipeline":
        stages = tuple(Stage(**stage) for stage in data["stages"])
        world.pipelines[data["id"]] = PipelineShape(data["id"], data["name"], stages)
        return
    if fact.kind in ("client", "category"):
        world.categories[fact.record] = data["category"]
        return
    if fact.kind == "rate":
        return  # base-currency figures are not reported yet (see history.EXCHANGE_RATES)
    if fact.kind == "opened":
        deal = Deal(
            key=fact.record,
            client=data["client"],
            pipeline=data["pipeline"],
            stage=data["stage"],
            probability=data["probability"],
            value=data["value"],
            currency=data["currency"],
            owner=data["owner"],
            source=data["source"],
            expected_close=data["expected_close_date"],
            opened=at,
        )
        deal.visits.append(Visit(1, deal.pipeline, deal.stage, None, deal.owner, at))
        world.deals[fact.record] = deal
        return
    fold_deal(world.deals[fact.record], fact)


def fold_deal(deal: Deal, fact: Fact) -> None:
    data, at = fact.data, fact.at
    match fact.kind:
        case "stage":
            deal.enter(deal.pipeline, data["stage"], at)
            deal.probability = data["probability"]
        case "value":
            deal.value, deal.currency = data["value"], data["currency"]
        case "close_date":
            deal.expected_close = data["expected_close_date"]
        case "probability":
            deal.probability = data["probability"]
        case "reassigned":
            deal.owner = data["owner"]
        case "details":
            deal.source = data.get("source", deal.source)
        case "won":
            deal.enter(deal.pipeline, data["stage"], at)
            deal.status, deal.closed = "won", at
        case "lost":
            deal.enter(deal.pipeline, data["stage"], at)
            deal.status, deal.closed = "lost", at
            deal.lost_reason, deal.lost_competitor = data["reason"], data["competitor"]
        case "reopened":
            deal.enter(deal.pipeline, data["stage"], at)
            deal.status, deal.closed, deal.probability = "open", None, data["probability"]
            deal.lost_reason = deal.lost_competitor = None
        case "moved":
            deal.enter(data["pipeline"], data["stage"], at)
            deal.probability = data["probability"]
        case "archived":
            deal.archived = True
            deal.visits[-1].left = at
        case _:
            raise AssertionError(f"unknown fact {fact.kind}")


# --- figures ---------------------------------------------------------------------------------


def money(deals: Iterable[Deal]) -> list[Json]:
    """Count and Σ value per currency, by currency code."""
    totals: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for deal in deals:
        totals[deal.currency][0] += 1
        totals[deal.currency][1] += deal.value
    return [
        {"currency": currency, "deals": n, "value": value}
        for currency, (n, value) in sorted(totals.items())
    ]


def weighted_money(deals: Iterable[Deal]) -> list[Json]:
    """Count, Σ value and Σ value × probability / 100 per currency."""
    chosen = list(deals)
    return [
        {
            **total,
            "weighted_value": sum(
                (d.value * d.probability / 100 for d in chosen if d.currency == total["currency"]),
                Decimal(0),
            ),
        }
        for total in money(chosen)
    ]


def durations(days: Sequence[float]) -> Json:
    if not days:
        return {"deals": 0, "mean_days": None, "median_days": None, "p90_days": None}
    p90 = days[0] if len(days) == 1 else statistics.quantiles(days, n=10, method="inclusive")[8]
    return {
        "deals": len(days),
        "mean_days": statistics.fmean(days),
        "median_days": statistics.median(days),
        "p90_days": p90,
    }


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def by_key(keys: Iterable[str | None]) -> list[str | None]:
    """Named groups alphabetically, the unnamed one last."""
    return sorted(set(keys), key=lambda key: (key is None, key or ""))


class Rates:
    """Every exchange rate set — reference data: all of them whatever the instant asked —
    a later recording for the same currency and effective date replacing an earlier one."""

    def __init__(self, base: str, facts: Iterable[Fact]) -> None:
        self.base = base
        self.by_currency: dict[str, dict[date, Decimal]] = defaultdict(dict)
        for fact in sorted((f for f in facts if f.kind == "rate"), key=lambda f: f.seq):
            self.by_currency[fact.data["currency"]][fact.data["from"]] = fact.data["rate"]

    def rate(self, currency: str, day: date) -> Decimal | None:
        """The rate effective on a (UTC) day: the one with the latest effective date by then."""
        if currency == self.base:
            return Decimal(1)
        effective = [start for start in self.by_currency.get(currency, {}) if start <= day]
        return self.by_currency[currency][max(effective)] if effective else None

    def convert(self, amounts: Iterable[tuple[Decimal, str, date]]) -> Json:
        """Σ amount × rate in the base currency; null, naming the missing rates, without one."""
        total, missing = Fraction(0), set()
        for amount, currency, day in amounts:
            rate = self.rate(currency, day)
            if rate is None:
                missing.add(f"{currency} on {day.isoformat()}")
            else:
                total += Fraction(amount) * Fraction(rate)
        return {
            "currency": self.base,
            "value": None if missing else total,
            "missing_rates": sorted(missing),
        }


class Oracle:
    """The analytics of one generated history, at any instant.

    ``base_currency``: also report money in that currency (None: per currency only).
    """

    def __init__(self, facts: Sequence[Fact], base_currency: str | None = None) -> None:
        self.facts = list(facts)
        self.rates = None if base_currency is None else Rates(base_currency, self.facts)
        self._worlds: dict[datetime | None, World] = {}

    # --- money in the base currency --------------------------------------------------------

    def open_in_base(self, deals: Sequence[Deal], q: Query) -> Json:
        """Open money at the rate effective on the day of ``as_of`` (or today)."""
        assert self.rates is not None
        day = (q.as_of or datetime.now(UTC)).astimezone(UTC).date()
        value = self.rates.convert((d.value, d.currency, day) for d in deals)
        weighted = self.rates.convert(
            (d.value * d.probability / 100, d.currency, day) for d in deals
        )
        return {**value, "weighted_value": weighted["value"]}

    def closed_in_base(self, deals: Iterable[Deal]) -> Json:
        """Closed money, each deal at the rate effective on its close day."""
        assert self.rates is not None
        return self.rates.convert(
            (d.value, d.currency, d.closed.astimezone(UTC).date())
            for d in deals
            if d.closed is not None
        )

    def world(self, as_of: datetime | None) -> World:
        if as_of not in self._worlds:
            self._worlds[as_of] = replay(self.facts, as_of)
        return self._worlds[as_of]

    # --- deals as they stood -------------------------------------------------------------

    def deals(self, q: Query) -> list[Deal]:
        """The deals at ``as_of`` in the pipeline and of the owner asked for."""
        return [
            deal
            for deal in self.world(q.as_of).deals.values()
            if (q.pipeline is None or deal.pipeline == q.pipeline)
            and (q.owner is None or deal.owner == q.owner)
        ]

    def open_deals(self, q: Query) -> list[Deal]:
        return [d for d in self.deals(q) if d.status == "open" and not d.archived]

    def closed(self, q: Query, *statuses: str) -> list[Deal]:
        wanted = statuses or ("won", "lost")
        return [
            d
            for d in self.deals(q)
            if d.status in wanted and d.closed is not None and q.in_period(d.closed)
        ]

    def pipelines(self, q: Query) -> list[PipelineShape]:
        shapes = self.world(None).pipelines
        return [shapes[q.pipeline]] if q.pipeline is not None else list(shapes.values())

    # --- SPEC §5 ------------------------------------------------------------------------

    def pipeline_value(self, q: Query) -> Json:
        deals = [d for d in self.open_deals(q) if q.day_in_period(d.expected_close)]
        stages = []
        for shape in self.pipelines(q):
            for stage in shape.open_stages:
                here = [d for d in deals if (d.pipeline, d.stage) == (shape.id, stage.id)]
                figures = {
                    "pipeline_id": shape.id,
                    "stage": stage.id,
                    "name": stage.name,
                    "probability": stage.probability,
                    "deals": len(here),
                    "by_currency": weighted_money(here),
                }
                if self.rates is not None:
                    figures["base"] = self.open_in_base(here, q)
                stages.append(figures)
        return {"stages": stages}

    def win_rate(self, q: Query) -> Json:
        won, lost = len(self.closed(q, "won")), len(self.closed(q, "lost"))
        return {"won": won, "lost": lost, "win_rate": ratio(won, won + lost)}

    def average_deal_size(self, q: Query) -> Json:
        won = self.closed(q, "won")
        totals = money(won)
        figures = {
            "by_currency": totals,
            "mean_by_currency": {t["currency"]: Fraction(t["value"]) / t["deals"] for t in totals},
        }
        if self.rates is not None:
            mean = self.closed_in_base(won)
            if mean["value"] is not None:
                # the mean of a sum reported to four places: within a unit of the fourth
                mean["value"] = Near(mean["value"] / len(won), ONE_UNIT) if won else None
            figures["mean_in_base"] = mean
        return figures

    def sales_cycle(self, q: Query) -> Json:
        return {
            outcome: durations([d.cycle_days for d in self.closed(q, outcome)])
            for outcome in ("won", "lost")
        }

    def forecast(self, q: Query) -> Json:
        open_by_month: dict[str, list[Deal]] = defaultdict(list)
        for deal in self.open_deals(q):
            if q.day_in_period(deal.expected_close):
                open_by_month[deal.expected_close.strftime("%Y-%m")].append(deal)
        won_by_month: dict[str, list[Deal]] = defaultdict(list)
        for deal in self.closed(q, "won"):
            assert deal.closed is not None
            won_by_month[deal.closed.astimezone(UTC).strftime("%Y-%m")].append(deal)
        months = []
        for month in sorted(set(open_by_month) | set(won_by_month)):
            figures = {
                "month": month,
                "open_deals": len(open_by_month[month]),
                "by_currency": weighted_money(open_by_month[month]),
                "won_so_far": money(won_by_month[month]),
            }
            if self.rates is not None:
                figures["base"] = self.open_in_base(open_by_month[month], q)
                figures["won_so_far_in_base"] = self.closed_in_base(won_by_month[month])
            months.append(figures)
        return {"months": months}

    def forecast_history(self, q: Query, month: str, step: timedelta) -> Json:
        assert q.period_from is not None
        assert q.period_to is not None
        points = []
        instant = q.period_from
        while instant < q.period_to:
            at = Query(q.pipeline, q.owner, as_of=instant)
            found = [m for m in self.forecast(at)["months"] if m["month"] == month]
            points.append({"as_of": instant, "forecast": found[0] if found else None})
            instant += step
        return {"month": month, "points": points}

    def win_loss(self, q: Query, by: str) -> Json:
        categories = self.world(q.as_of).categories
        groups: dict[str | None, dict[str, list[Deal]]] = defaultdict(
            lambda: {"won": [], "lost": []}
        )
        for deal in self.closed(q):
            key = {
                "lost_reason": deal.lost_reason,
                "competitor": deal.lost_competitor,
                "source": deal.source,
                "owner": deal.owner,
                "client_category": categories.get(deal.client),
            }[by]
            groups[key][deal.status].append(deal)
        breakdown = []
        for key in by_key(groups):
            won, lost = groups[key]["won"], groups[key]["lost"]
            figures: Json = {
                "key": key,
                "won": len(won),
                "lost": len(lost),
                "won_value": money(won),
                "lost_value": money(lost),
            }
            if self.rates is not None:
                figures["won_value_in_base"] = self.closed_in_base(won)
                figures["lost_value_in_base"] = self.closed_in_base(lost)
            breakdown.append(figures)
        return {"by": by, "groups": breakdown}

    def salespeople(self, q: Query) -> Json:
        closed: dict[str | None, list[Deal]] = defaultdict(list)
        for deal in self.closed(q):
            closed[deal.owner].append(deal)
        open_: dict[str | None, list[Deal]] = defaultdict(list)
        for deal in self.open_deals(q):  # as of the instant, whatever the period
            open_[deal.owner].append(deal)
        figures = []
        for owner in by_key([*closed, *open_]):
            won = [d for d in closed[owner] if d.status == "won"]
            lost = [d for d in closed[owner] if d.status == "lost"]
            cycles = [d.cycle_days for d in won]
            person: Json = {
                "owner_id": owner,
                "won": len(won),
                "lost": len(lost),
                "win_rate": ratio(len(won), len(won) + len(lost)),
                "revenue_won": money(won),
                "mean_cycle_days": statistics.fmean(cycles) if cycles else None,
                "open_deals": len(open_[owner]),
                "open_pipeline": weighted_money(open_[owner]),
                "interactions_logged": None,
            }
            if self.rates is not None:
                person["revenue_won_in_base"] = self.closed_in_base(won)
                person["open_pipeline_in_base"] = self.open_in_base(open_[owner], q)
            figures.append(person)
        return {"salespeople": figures}

    # --- stages ---------------------------------------------------------------------------

    def entered(self, q: Query, shape: PipelineShape) -> list[tuple[Deal, Visit]]:
        """The visits of the pipeline entered in the period (by then), by the owner then."""
        return [
            (deal, visit)
            for deal in self.world(q.as_of).deals.values()
            for visit in deal.visits
            if visit.pipeline == shape.id
            and q.in_period(visit.entered)
            and (q.owner is None or visit.owner == q.owner)
        ]

    def conversion(self, q: Query) -> Json:
        stages, transitions = [], []
        for shape in self.pipelines(q):
            visits = self.entered(q, shape)
            open_ids = [s.id for s in shape.open_stages]
            won = shape.of_kind("won").id

            def later(
                stage: str, than: str, open_ids: list[str] = open_ids, won: str = won
            ) -> bool:
                if stage == won:
                    return True
                return stage in open_ids and open_ids.index(stage) > open_ids.index(than)

            for stage in open_ids:
                first: dict[str, int] = {}  # each deal's first visit of the stage in the period
                for deal, visit in visits:
                    if visit.stage == stage:
                        first[deal.key] = min(first.get(deal.key, visit.number), visit.number)
                deals = self.world(q.as_of).deals
                converted = sum(
                    any(
                        v.pipeline == shape.id and v.number > number and later(v.stage, stage)
                        for v in deals[key].visits
                    )
                    for key, number in first.items()
                )
                stages.append(
                    {
                        "pipeline_id": shape.id,
                        "stage": stage,
                        "entered": len(first),
                        "converted": converted,
                        "conversion_rate": ratio(converted, len(first)),
                    }
                )
            moves = Counter(
                (visit.from_stage, visit.stage) for _, visit in visits if visit.from_stage
            )
            transitions += [
                {"pipeline_id": shape.id, "from_stage": a, "to_stage": b, "count": n}
                for (a, b), n in sorted(moves.items())
            ]
        return {"stages": stages, "transitions": transitions}

    def visits(self, q: Query, now: datetime) -> Json:
        """Every visit of an open stage entered in the period; a current one counts to as_of."""
        end = q.as_of or now
        found = []
        for shape in self.pipelines(q):
            open_ids = {s.id for s in shape.open_stages}
            for deal, visit in self.entered(q, shape):
                if visit.stage in open_ids:
                    found.append(
                        {
                            "deal_id": deal.key,
                            "pipeline_id": visit.pipeline,
                            "stage": visit.stage,
                            "visit_no": visit.number,
                            "from_stage": visit.from_stage,
                            "entered_at": visit.entered,
                            "left_at": visit.left,
                            "days": ((visit.left or end) - visit.entered) / DAY,
                        }
                    )
        return {"visits": found}

    def time_in_stage(self, q: Query, now: datetime) -> Json:
        days: dict[tuple[str, str], list[float]] = defaultdict(list)
        for visit in self.visits(q, now)["visits"]:
            days[(visit["pipeline_id"], visit["stage"])].append(visit["days"])
        return {
            "stages": [
                {
                    "pipeline_id": shape.id,
                    "stage": stage.id,
                    "visits": len(days[(shape.id, stage.id)]),
                    "mean_days": statistics.fmean(days[(shape.id, stage.id)])
                    if days[(shape.id, stage.id)]
                    else None,
                    "median_days": statistics.median(days[(shape.id, stage.id)])
                    if days[(shape.id, stage.id)]
                    else None,
                }
                for shape in self.pipelines(q)
                for stage in shape.open_stages
            ]
        }

    def rotting(self, q: Query, thresholds: dict[str, float], now: datetime) -> Json:
        stuck = [
            visit
            for visit in self.visits(q, now)["visits"]
            if visit["left_at"] is None and visit["days"] > thresholds[visit["stage"]]
        ]
        return {"visits": sorted(stuck, key=lambda visit: -visit["days"])}
