"""Exchange rates: what one unit of a currency is worth in the organization's base currency,
from a date on. Set by an admin, recorded as events, read back by the analytics.

:class:`ExchangeRates` is one record per organization (its id derives from the organization).
:class:`RateTable` answers "which rate held on this day" from the recorded rates, with no I/O.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from aggregates.base import CrmAggregate
from aggregates.context import EventContext
from aggregates.errors import InvalidValue, RuleBroken

CURRENCY_CODE = re.compile(r"[A-Z]{3}")


class ExchangeRates(CrmAggregate):
    """The exchange rates of one organization, each effective from a date."""

    class ExchangeRatesStarted(CrmAggregate.Created):
        pass

    class ExchangeRateSet(CrmAggregate.Event):
        currency: str
        base_currency: str
        rate_to_base: Decimal
        effective_from: date

    @staticmethod
    def create_id(context: EventContext, **_: Any) -> UUID:
        return ExchangeRates.id_for(context.organization_id)

    @staticmethod
    def id_for(organization_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"monton-crm:exchange-rates:{organization_id}")

    @event(ExchangeRatesStarted)
    def __init__(self, context: EventContext) -> None:
        self.rates: dict[tuple[str, str, date], Decimal] = {}

    def set_rate(
        self,
        currency: str,
        rate_to_base: Decimal,
        effective_from: date,
        base_currency: str,
        context: EventContext,
    ) -> None:
        """1 ``currency`` = ``rate_to_base`` ``base_currency`` from ``effective_from`` on."""
        self.check_in_sequence(context)
        if not CURRENCY_CODE.fullmatch(currency):
            raise InvalidValue("currency", f"{currency!r} is not an ISO 4217 currency code.")
        if currency == base_currency:
            raise InvalidValue(
                "currency", f"{currency} is the base currency; its rate to itself is 1."
            )
        if not rate_to_base.is_finite() or rate_to_base <= 0:
            raise InvalidValue("rate_to_base", "A rate is a decimal number greater than 0.")
        if self.rates.get((base_currency, currency, effective_from)) == rate_to_base:
            raise RuleBroken(
                f"1 {currency} is already {rate_to_base} {base_currency} from "
                f"{effective_from.isoformat()}."
            )
        self._rate_set(
            currency=currency,
            base_currency=base_currency,
            rate_to_base=rate_to_base,
            effective_from=effective_from,
            context=context,
        )

    @event(ExchangeRateSet)
    def _rate_set(
        self,
        currency: str,
        base_currency: str,
        rate_to_base: Decimal,
        effective_from: date,
        context: EventContext,
    ) -> None:
        self.rates[(base_currency, currency, effective_from)] = rate_to_base


class RecordedRate(Protocol):
    """What :class:`RateTable` needs of a recorded rate (an ``ExchangeRateSet`` has it)."""

    @property
    def currency(self) -> str: ...

    @property
    def base_currency(self) -> str: ...

    @property
    def rate_to_base(self) -> Decimal: ...

    @property
    def effective_from(self) -> date: ...


@dataclass(frozen=True)
class RateTable:
    """The rates to one base currency, by currency, in order of their effective dates.

    A rate is effective from the start (UTC) of its date until the next rate of the same
    currency; a later recording for the same currency and date replaces an earlier one.
    Rates recorded against another base currency (before the organization changed its base)
    are left out.
    """

    base_currency: str
    _dates: dict[str, list[date]] = field(default_factory=dict)
    _rates: dict[str, list[Decimal]] = field(default_factory=dict)

    @classmethod
    def from_rates(cls, base_currency: str, recorded: Iterable[RecordedRate]) -> RateTable:
        """The table from rates in the order they were recorded (the event log's order)."""
        latest: dict[str, dict[date, Decimal]] = {}
        for rate in recorded:
            if rate.base_currency == base_currency:
                latest.setdefault(rate.currency, {})[rate.effective_from] = rate.rate_to_base
        table = cls(base_currency)
        for currency, by_date in latest.items():
            days = sorted(by_date)
            table._dates[currency] = days
            table._rates[currency] = [by_date[day] for day in days]
        return table

    def rate(self, currency: str, at: date | datetime) -> Decimal | None:
        """The rate of ``currency`` effective at ``at``; 1 for the base; None when missing."""
        if currency == self.base_currency:
            return Decimal(1)
        days = self._dates.get(currency)
        if not days:
            return None
        index = bisect.bisect_right(days, day_of(at)) - 1
        return None if index < 0 else self._rates[currency][index]

    def effective_days(self) -> dict[str, list[date]]:
        """Each currency's effective dates, ascending (the base currency has none)."""
        return {currency: list(days) for currency, days in self._dates.items()}

    def to_base(self, amount: Decimal, currency: str, at: date | datetime) -> Decimal | None:
        """``amount`` of ``currency`` in the base currency at ``at``; None without a rate."""
        rate = self.rate(currency, at)
        return None if rate is None else amount * rate


def rate_at(
    recorded: Iterable[RecordedRate], base_currency: str, currency: str, at: date | datetime
) -> Decimal | None:
    """The rate of ``currency`` to ``base_currency`` effective at ``at``, or None if missing."""
    return RateTable.from_rates(base_currency, recorded).rate(currency, at)


def day_of(at: date | datetime) -> date:
    """The (UTC) day of an instant; a naive datetime is taken as UTC."""
    if isinstance(at, datetime):
        return (at.astimezone(UTC) if at.tzinfo is not None else at).date()
    return at
