"""Stored events read through their class's schema, and through the library's path whenever
the schema does not fit: either way, the event the library would have built."""

from __future__ import annotations

import importlib
import json
import pkgutil
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

import aggregates
from aggregates.base import CrmAggregate
from aggregates.client import Client
from aggregates.deal import Deal
from event_store.typed_states import SchemaBuilder, TypedMapper, UntypedField
from tests.unit.builders import at, day
from tests.unit.test_transcoder import transcoders


def event_classes() -> list[type]:
    """Every concrete event class of the CRM's aggregates."""
    for module in pkgutil.iter_modules(aggregates.__path__):
        importlib.import_module(f"aggregates.{module.name}")
    found: set[type] = set()
    todo: list[type] = [DomainEvent]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    # the library makes several classes of one name (its decorators subclass them): the one a
    # topic resolves to is the one events are read as
    topics = {f"{c.__module__}:{c.__qualname__}" for c in found}
    return [resolve_topic(t) for t in sorted(topics) if t.startswith("aggregates.")]


def same_values(ours: Any, theirs: Any) -> bool:
    """The same class and the same values, each of the same type and form (``repr``)."""

    def values(event: Any) -> dict[str, str]:
        return {name: repr(value) for name, value in event.__dict__.items()}

    return type(ours) is type(theirs) and values(ours) == values(theirs)


def mappers() -> tuple[Mapper[UUID], TypedMapper]:
    _, transcoder = transcoders()
    return Mapper(transcoder=transcoder), TypedMapper(transcoder=transcoder)


def stored(topic: str, state: dict[str, Any], version: int = 2) -> StoredEvent:
    return StoredEvent(uuid4(), version, topic, json.dumps(state).encode())


def a_stage_change() -> dict[str, Any]:
    """A stage change's state as the library's transcoder stores it."""
    library, _ = transcoders()
    event = Deal.StageChanged(  # type: ignore[call-arg]
        originator_id=uuid4(),
        originator_version=2,
        timestamp=datetime(2026, 12, 6, 4, 35, tzinfo=UTC),
        context=at(day(3)),
        from_stage="lead",
        to_stage="proposal",
        probability=50,
    )
    state = dict(event.__dict__)
    del state["originator_id"], state["originator_version"]
    decoded: dict[str, Any] = json.loads(library.encode(state))
    return decoded


def test_given_every_event_class_of_the_aggregates_when_its_schema_is_built_then_there_is_one() -> (
    None
):
    _, transcoder = transcoders()
    builder = SchemaBuilder(transcoder)
    classes = event_classes()

    untyped = []
    for cls in classes:
        try:
            builder.schema(cls)
        except UntypedField as error:
            untyped.append((cls.__qualname__, str(error)))

    assert len(classes) >= 40
    assert untyped == []


def test_given_a_stored_state_when_read_by_its_schema_then_it_is_the_librarys_event() -> None:
    library, typed = mappers()
    event = stored(get_topic(Deal.StageChanged), a_stage_change())

    ours, theirs = typed.to_domain_event(event), library.to_domain_event(event)

    assert typed.schema_of(event.topic) is not None
    assert type(ours) is Deal.StageChanged
    assert same_values(ours, theirs)
    assert ours.context.occurred_at == day(3)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda s: s.update(note="extra"), "a field the class does not have"),
        (lambda s: s.pop("probability"), "a field missing"),
        (lambda s: s.update(probability="50"), "a value of another type"),
        (lambda s: s.update(probability=2**70), "an integer beyond 64 bits"),
        (lambda s: s["timestamp"].update(_type_="date_iso"), "a pair of another transcoding"),
    ],
)
def test_given_a_state_its_schema_does_not_fit_when_read_then_it_is_what_the_library_reads(
    change: Any, why: str
) -> None:
    library, typed = mappers()
    state = a_stage_change()
    change(state)
    event = stored(get_topic(Deal.StageChanged), state)

    try:
        theirs = library.to_domain_event(event)
    except Exception as error:  # the library refuses it too: so does the typed path
        with pytest.raises(type(error)):
            typed.to_domain_event(event)
        return
    ours = typed.to_domain_event(event)

    assert same_values(ours, theirs), why


class Surveyed(CrmAggregate.Event):
    """An event class with a field no schema is built for (a float)."""

    reading: float


def test_given_a_class_with_no_schema_when_its_event_is_read_then_the_librarys_path_reads_it() -> (
    None
):
    library, typed = mappers()
    state = {**a_stage_change(), "reading": 0.25}
    del state["from_stage"], state["to_stage"], state["probability"]
    event = stored(get_topic(Surveyed), state)

    ours, theirs = typed.to_domain_event(event), library.to_domain_event(event)

    assert typed.schema_of(event.topic) is None
    assert same_values(ours, theirs)
    assert ours.reading == 0.25  # type: ignore[attr-defined]


def test_given_dates_decimals_and_uuids_in_a_state_when_read_then_each_keeps_its_type() -> None:
    library, typed = mappers()
    encoder, _ = transcoders()
    opened = {
        **a_stage_change(),
        "name": "Renewal",
        "client_id": uuid4(),
        "value": Decimal("1234.5000"),
        "currency": "EUR",
        "expected_close_date": date(2026, 1, 31),
        "pipeline_id": "default",
        "stage": "lead",
        "probability": 10,
        "owner_id": None,
        "source": "web",
        "competitor": None,
        "notes": None,
        "stakeholder_contact_ids": [uuid4(), uuid4()],
        "stakeholder_user_ids": ["ana"],
        "originator_topic": get_topic(Deal),
    }
    del opened["from_stage"], opened["to_stage"]
    state = json.loads(encoder.encode(opened))
    event = stored(get_topic(Deal.DealOpened), state, version=1)

    ours, theirs = typed.to_domain_event(event), library.to_domain_event(event)

    assert typed.schema_of(event.topic) is not None
    assert same_values(ours, theirs)
    assert str(ours.value) == "1234.5000"  # type: ignore[attr-defined]
    assert all(type(i) is UUID for i in ours.stakeholder_contact_ids)  # type: ignore[attr-defined]


def test_given_the_librarys_own_transcoder_when_a_class_has_a_dict_field_then_the_library_reads_it() -> (  # noqa: E501
    None
):
    library_transcoder, _ = transcoders()  # no way to revive values of no fixed type
    typed = TypedMapper(transcoder=library_transcoder)
    state = {
        **a_stage_change(),
        "changes": {"name": "Acme", "since": {"_type_": "date_iso", "_data_": "2025-01-31"}},
    }
    del state["from_stage"], state["to_stage"], state["probability"]
    event = stored(get_topic(Client.ClientDetailsChanged), state)

    ours = typed.to_domain_event(event)

    assert typed.schema_of(event.topic) is None
    assert same_values(ours, Mapper(transcoder=library_transcoder).to_domain_event(event))
    assert ours.changes["since"] == date(2025, 1, 31)  # type: ignore[attr-defined]
