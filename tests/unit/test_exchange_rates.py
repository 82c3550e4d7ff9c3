"""Exchange rates: the record's rules, and the rate effective at a day or an instant."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from aggregates.errors import InvalidValue, RuleBroken
from aggregates.exchange_rates import ExchangeRates, RateTable, rate_at
from tests.unit.builders import ORG, OTHER_ORG, at, day, on_day, only_event, recorded, replayed

JAN_1, FEB_1, MAR_1 = date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)


def rates_set(*rates: tuple[str, str, date], base: str = "EUR") -> ExchangeRates:
    """A record with these (currency, rate, effective from) already set."""
    record = ExchangeRates(context=on_day(0))
    for n, (currency, rate, effective_from) in enumerate(rates):
        record.set_rate(currency, Decimal(rate), effective_from, base, on_day(n))
    return record


def recorded_rates(
    *rates: tuple[str, str, date], base: str = "EUR"
) -> list[ExchangeRates.ExchangeRateSet]:
    events = rates_set(*rates, base=base).collect_events()
    return [event for event in events if isinstance(event, ExchangeRates.ExchangeRateSet)]


# --- the record ----------------------------------------------------------------------------


def test_one_record_per_organization_holds_its_rates() -> None:
    ours = ExchangeRates(context=on_day(0))
    theirs = ExchangeRates(context=at(day(0), OTHER_ORG))

    assert ours.id == ExchangeRates.id_for(ORG)
    assert theirs.id == ExchangeRates.id_for(OTHER_ORG) != ours.id


def test_a_rate_is_recorded_with_its_base_currency_and_effective_date() -> None:
    record = recorded(ExchangeRates(context=on_day(0)))

    record.set_rate("USD", Decimal("0.92"), FEB_1, "EUR", on_day(1))

    recorded_rate = only_event(record)
    assert isinstance(recorded_rate, ExchangeRates.ExchangeRateSet)
    assert (recorded_rate.currency, recorded_rate.base_currency) == ("USD", "EUR")
    assert (recorded_rate.rate_to_base, recorded_rate.effective_from) == (Decimal("0.92"), FEB_1)
    assert recorded_rate.context.actor_id


def test_the_record_replays_to_the_same_rates() -> None:
    record = rates_set(("USD", "0.92", JAN_1), ("GBP", "1.17", JAN_1))

    copy = replayed(ExchangeRates, record.collect_events())

    assert copy.rates == record.rates


@pytest.mark.parametrize("rate", ["0", "-1", "NaN", "Infinity"])
def test_a_rate_is_a_positive_finite_number(rate: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        rates_set().set_rate("USD", Decimal(rate), JAN_1, "EUR", on_day(1))

    assert refused.value.field == "rate_to_base"


@pytest.mark.parametrize("currency", ["usd", "US", "USDX", ""])
def test_a_rate_is_for_an_iso_4217_currency(currency: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        rates_set().set_rate(currency, Decimal("1.1"), JAN_1, "EUR", on_day(1))

    assert refused.value.field == "currency"


def test_the_base_currency_has_no_rate() -> None:
    with pytest.raises(InvalidValue, match="EUR is the base currency") as refused:
        rates_set().set_rate("EUR", Decimal("1"), JAN_1, "EUR", on_day(1))

    assert refused.value.field == "currency"


def test_setting_the_same_rate_for_the_same_day_again_is_refused() -> None:
    record = recorded(rates_set(("USD", "0.92", JAN_1)))

    with pytest.raises(RuleBroken, match=r"already 0\.92 EUR"):
        record.set_rate("USD", Decimal("0.92"), JAN_1, "EUR", on_day(5))


def test_a_different_rate_for_the_same_day_corrects_it() -> None:
    record = recorded(rates_set(("USD", "0.92", JAN_1)))

    record.set_rate("USD", Decimal("0.93"), JAN_1, "EUR", on_day(5))

    assert only_event(record).rate_to_base == Decimal("0.93")


def test_a_rate_cannot_be_set_before_the_records_previous_event() -> None:
    record = recorded(rates_set(("USD", "0.92", JAN_1)))

    with pytest.raises(RuleBroken, match="before this record's previous event"):
        record.set_rate("GBP", Decimal("1.17"), JAN_1, "EUR", at(day(0) - timedelta(seconds=1)))


# --- the rate effective at a day or an instant ---------------------------------------------


RATES = (("USD", "0.90", JAN_1), ("USD", "0.95", MAR_1), ("GBP", "1.17", FEB_1))


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (JAN_1, "0.90"),
        (date(2025, 2, 28), "0.90"),
        (MAR_1, "0.95"),
        (date(2030, 1, 1), "0.95"),
        (datetime(2025, 2, 28, 23, 59, tzinfo=UTC), "0.90"),
        (datetime(2025, 3, 1, 0, 0, tzinfo=UTC), "0.95"),
        # 00:30 on 1 March in Madrid is still 28 February in UTC
        (datetime(2025, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), "0.90"),
    ],
)
def test_the_rate_effective_at_a_day_or_instant_is_the_latest_from_on_or_before_it(
    when: date | datetime, expected: str
) -> None:
    assert rate_at(recorded_rates(*RATES), "EUR", "USD", when) == Decimal(expected)


def test_a_rate_before_the_first_effective_date_is_missing() -> None:
    assert rate_at(recorded_rates(*RATES), "EUR", "USD", date(2024, 12, 31)) is None
    assert rate_at(recorded_rates(*RATES), "EUR", "GBP", JAN_1) is None


def test_a_currency_without_rates_is_missing() -> None:
    assert rate_at(recorded_rates(*RATES), "EUR", "JPY", MAR_1) is None


def test_the_base_currency_is_worth_one() -> None:
    assert rate_at([], "EUR", "EUR", MAR_1) == Decimal(1)


def test_a_later_recording_for_the_same_day_replaces_the_earlier_one() -> None:
    rates = recorded_rates(("USD", "0.90", JAN_1), ("USD", "0.91", JAN_1))

    assert rate_at(rates, "EUR", "USD", FEB_1) == Decimal("0.91")


def test_rates_recorded_against_another_base_currency_are_left_out() -> None:
    old_base = recorded_rates(("USD", "0.90", JAN_1), base="EUR")
    new_base = recorded_rates(("EUR", "1.08", MAR_1), base="USD")
    table = RateTable.from_rates("USD", [*old_base, *new_base])

    assert table.rate("USD", MAR_1) == Decimal(1)
    assert table.rate("EUR", MAR_1) == Decimal("1.08")
    assert table.rate("EUR", FEB_1) is None


def test_an_amount_is_converted_to_the_base_currency_at_the_rate_then() -> None:
    table = RateTable.from_rates("EUR", recorded_rates(*RATES))

    assert table.to_base(Decimal("1000"), "USD", date(2025, 3, 15)) == Decimal("950.00")
    assert table.to_base(Decimal("1000"), "JPY", date(2025, 3, 15)) is None
