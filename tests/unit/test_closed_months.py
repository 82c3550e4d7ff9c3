"""Which closes of a period the closed deals' monthly summary serves, and which it leaves to
the deals' own rows: months the period cuts, months before a currency's first rate, months a
rate starts in after their first day, and currencies with no rate at all."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from aggregates.exchange_rates import RateTable
from projections.closed_summary import ClosedMonths
from projections.currency import StoredRate
from projections.row_projection import FOREVER_US
from projections.units import micros

NEVER_US = -FOREVER_US


def us(year: int, month: int, day: int = 1, hour: int = 0) -> int:
    return micros(datetime(year, month, day, hour, tzinfo=UTC))


def rates(*days: date) -> RateTable:
    """USD rates to EUR effective on ``days``."""
    recorded = [StoredRate("USD", "EUR", Decimal("0.9") + n, day) for n, day in enumerate(days)]
    return RateTable.from_rates("EUR", recorded)


def test_given_all_time_when_months_are_sorted_then_the_base_currency_is_served_every_month() -> (
    None
):
    months = ClosedMonths(NEVER_US, FOREVER_US, rates())

    assert months.any_whole_month
    assert months.serves("EUR", us(1999, 7))
    assert months.deals_where([]) is None


def test_given_rates_from_the_first_of_a_month_when_sorted_then_months_from_it_are_served() -> None:
    months = ClosedMonths(NEVER_US, FOREVER_US, rates(date(2025, 3, 1), date(2025, 4, 1)))

    assert not months.serves("USD", us(2025, 2))  # no rate yet: each close day is named
    assert months.serves("USD", us(2025, 3))
    assert months.serves("USD", us(2025, 4))
    assert months.serves("USD", us(2030, 1))


def test_given_a_rate_starting_mid_month_when_sorted_then_that_month_is_read_from_the_deals() -> (
    None
):
    months = ClosedMonths(NEVER_US, FOREVER_US, rates(date(2025, 3, 1), date(2025, 5, 17)))

    assert months.serves("USD", us(2025, 4))
    assert not months.serves("USD", us(2025, 5))
    assert months.serves("USD", us(2025, 6))


def test_given_a_first_rate_mid_month_when_sorted_then_service_starts_the_month_after() -> None:
    months = ClosedMonths(NEVER_US, FOREVER_US, rates(date(2025, 3, 10)))

    assert not months.serves("USD", us(2025, 3))
    assert months.serves("USD", us(2025, 4))


def test_given_a_currency_with_no_rate_when_sorted_then_none_of_its_months_is_served() -> None:
    months = ClosedMonths(NEVER_US, FOREVER_US, rates(date(2025, 3, 1)))

    assert not months.serves("GBP", us(2025, 6))


def test_given_a_period_cutting_months_when_sorted_then_their_parts_come_from_the_deals() -> None:
    period_from, period_to = us(2025, 3, 14, 9), us(2025, 8, 2)
    months = ClosedMonths(period_from, period_to, rates())

    assert months.summary_where()[1] == [us(2025, 4), us(2025, 8)]
    where = months.deals_where([("USD", us(2025, 6))])

    assert where is not None
    clause, params = where
    assert clause == (
        "(closed_at_us < ? OR closed_at_us >= ? OR "
        "(currency = ? AND closed_at_us >= ? AND closed_at_us < ?))"
    )
    assert params == [us(2025, 4), us(2025, 8), "USD", us(2025, 6), us(2025, 7)]


def test_given_a_period_within_one_month_when_sorted_then_the_summary_serves_none_of_it() -> None:
    months = ClosedMonths(us(2025, 3, 2), us(2025, 3, 30), rates())

    assert not months.any_whole_month
