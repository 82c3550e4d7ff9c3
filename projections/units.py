"""How read models store money and time: exact integers that sum and sort alike on both stores."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

MONEY_SCALE = 10_000  # value_e4: money in ten-thousandths, exact in BIGINT
WEIGHTED_SCALE = MONEY_SCALE * 100  # weighted_e6: value_e4 × probability (percent)
MICROS_PER_DAY = 86_400_000_000


def money_e4(value: Decimal) -> int:
    return int((value * MONEY_SCALE).to_integral_value())


def money_from_e4(value_e4: int) -> Decimal:
    return (Decimal(value_e4) / MONEY_SCALE).quantize(Decimal("0.0001"))


def weighted_from_e6(weighted_e6: int) -> Decimal:
    return (Decimal(weighted_e6) / WEIGHTED_SCALE).quantize(Decimal("0.0001"))


def micros(instant: datetime) -> int:
    delta = instant.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def instant_from_micros(value: int) -> datetime:
    return datetime.fromtimestamp(value // 1_000_000, tz=UTC).replace(microsecond=value % 1_000_000)
