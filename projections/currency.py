"""Money in the organization's base currency, at the rate effective when it counts.

Closed deals convert at the rate effective on their close day, open deals at the rate
effective at ``as_of`` (or today). A figure that needs a rate nobody set says which rates are
missing instead of guessing. Rates are reference data: the figures use every rate known now,
including rates set later with an earlier effective date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from uuid import UUID

from aggregates.exchange_rates import RateTable
from event_store.read_model_store import ReadModelStore, sql_text
from projections.pipelines import EXCHANGE_RATES_TABLE
from projections.units import MICROS_PER_DAY

FOUR_PLACES = Decimal("0.0001")
EPOCH_DAY = date(1970, 1, 1)


@dataclass(frozen=True)
class StoredRate:
    currency: str
    base_currency: str
    rate_to_base: Decimal
    effective_from: date


@dataclass
class BaseAmount:
    """A sum in the base currency; ``value`` is None when ``missing_rates`` is not empty."""

    currency: str
    value: Decimal | None = Decimal(0)
    missing_rates: list[str] = field(default_factory=list)

    def add(self, rates: RateTable, amount: Decimal, currency: str, on: date) -> None:
        rate = rates.rate(currency, on)
        if rate is None:
            missing = f"{currency} on {on.isoformat()}"
            if missing not in self.missing_rates:
                self.missing_rates.append(missing)
            self.value = None
        elif self.value is not None:
            self.value += amount * rate

    def rounded(self) -> BaseAmount:
        value = None if self.value is None else self.value.quantize(FOUR_PLACES)
        return BaseAmount(self.currency, value, sorted(self.missing_rates))


class Rates:
    """Each organization's base currency and rate table, read from the read models."""

    def __init__(self, store: ReadModelStore) -> None:
        self.store = store

    def table(self, organization_id: UUID) -> RateTable:
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT base_currency FROM rm_organizations WHERE id = ?", [str(organization_id)]
            )
            row = cursor.fetchone()
            base = "EUR" if row is None else str(row["base_currency"])
            cursor.execute(
                f"SELECT currency, base_currency, rate_to_base, effective_from, version "
                f"FROM {EXCHANGE_RATES_TABLE} WHERE organization_id = ? AND base_currency = ?",
                [str(organization_id), base],
            )
            rows = cursor.fetchall()
        rates = [
            StoredRate(
                r["currency"], r["base_currency"], Decimal(r["rate_to_base"]),
                date.fromisoformat(r["effective_from"]),
            )
            for r in sorted(rows, key=lambda r: int(r["version"]))
        ]  # fmt: skip
        return RateTable.from_rates(base, rates)


def rate_day_sql(
    rates: RateTable, currency: str = "currency", closed_at: str = "closed_at_us"
) -> str:
    """A SQL expression: the day (since 1970-01-01) whose rate converts a closed deal — the
    effective date of the rate in force at its close, or, with none in force, the close day.

    Closed money grouped by it instead of by close day converts the same (a rate applies to
    the sum as to each part), in a few groups per rate rather than one per day."""
    close_day = close_day_sql(closed_at)
    branches = [f"WHEN {sql_text(rates.base_currency)} THEN 0"]
    for code, days in sorted(rates.effective_days().items()):
        if code == rates.base_currency or not days:
            continue
        since = [(day - EPOCH_DAY).days for day in reversed(days)]
        steps = " ".join(f"WHEN {closed_at} >= {n * MICROS_PER_DAY} THEN {n}" for n in since)
        branches.append(f"WHEN {sql_text(code)} THEN CASE {steps} ELSE {close_day} END")
    return f"(CASE {currency} {' '.join(branches)} ELSE {close_day} END)"


def close_day_sql(closed_at: str = "closed_at_us") -> str:
    """A SQL expression: whole days since 1970-01-01 (UTC) of a close, on both stores."""
    return f"{closed_at} / {MICROS_PER_DAY}"
