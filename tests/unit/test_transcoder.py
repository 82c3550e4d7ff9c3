"""Stored events read back through msgspec's parser are the values Python's json gives."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex

from aggregates.context import EventContext
from event_store.transcodings import CrmTranscoder, register_crm_transcodings


def transcoders() -> tuple[JSONTranscoder, CrmTranscoder]:
    """The library's transcoder and ours, each with what the application registers."""
    library, ours = JSONTranscoder(), CrmTranscoder()
    for transcoder in (library, ours):
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
            transcoder.register(transcoding)
        register_crm_transcodings(transcoder)
    return library, ours


def an_event_state() -> dict[str, Any]:
    command_id = uuid4()
    return {
        "timestamp": datetime(2026, 12, 5, 23, 58, 9, 222276, tzinfo=UTC),
        "context": EventContext(
            organization_id=uuid4(),
            actor_id="u-1",
            occurred_at=datetime(2025, 3, 31, 12, tzinfo=UTC),
            command_id=command_id,
            correlation_id=command_id,
        ),
        "value": Decimal("1234.5678"),
        "expected_close_date": date(2026, 1, 31),
        "stakeholders": [uuid4(), {"nested": [Decimal("0.1"), {"deeper": uuid4()}]}],
        "details": {"custom": {"_type_": "plain", "count": 3}, "empty": {}, "none": None},
        "big": 123_456_789_012_345_678_901_234_567_890,
        "negative_big": -(2**64) - 1,
        "ratio": 0.1,
        "text": 'quién «dijo» "eso"\n\t\\',
        "flags": [True, False, None],
    }


def test_given_an_event_state_when_read_back_by_both_transcoders_then_the_values_are_equal() -> (
    None
):
    library, ours = transcoders()
    state = an_event_state()
    stored = library.encode(state)

    assert ours.decode(stored) == library.decode(stored) == state


def test_given_integers_beyond_64_bits_when_read_back_then_they_stay_exact_integers() -> None:
    library, ours = transcoders()
    stored = library.encode({"big": 2**200 + 1, "small": -(2**70)})

    decoded = ours.decode(stored)

    assert decoded == {"big": 2**200 + 1, "small": -(2**70)}
    assert all(type(value) is int for value in decoded.values())


@pytest.mark.parametrize("special", [math.inf, -math.inf])
def test_given_what_only_pythons_json_reads_when_read_back_then_it_is_read_by_json(
    special: float,
) -> None:
    library, ours = transcoders()
    stored = library.encode({"value": special, "at": datetime(2026, 1, 1, tzinfo=UTC)})
    assert b"Infinity" in stored

    assert ours.decode(stored) == {"value": special, "at": datetime(2026, 1, 1, tzinfo=UTC)}


def test_given_not_a_number_when_read_back_then_it_is_read_by_json() -> None:
    library, ours = transcoders()
    stored = library.encode({"value": math.nan, "id": UUID(int=7)})

    decoded = ours.decode(stored)

    assert math.isnan(decoded["value"])
    assert decoded["id"] == UUID(int=7)


def test_given_invalid_json_when_read_back_then_it_fails_as_with_pythons_json() -> None:
    library, ours = transcoders()

    with pytest.raises(json.JSONDecodeError):
        library.decode(b'{"unterminated": ')
    with pytest.raises(json.JSONDecodeError):
        ours.decode(b'{"unterminated": ')
