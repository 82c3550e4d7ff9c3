"""Every stored event read through its class's schema is the event the library's path reads.

The generated history holds every kind of deal, client and organization event the command
API records (opened, moved back and forth, revalued into another currency, re-dated,
reassigned, won, lost, reopened, archived, moved between pipelines; clients re-categorized;
pipelines and rates defined), on both stores.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec
from eventsourcing.persistence import Mapper

from event_store.typed_states import TypedMapper
from tests.analytics.suite import GeneratedHistory


def every_stored_event(history: GeneratedHistory) -> list[Any]:
    commands = history.api.app.state.service.commands  # type: ignore[attr-defined]
    return list(commands.recorder.select_notifications(start=None, limit=1_000_000))


def test_given_a_generated_history_when_each_event_is_read_by_its_class_schema_then_it_is_what_the_library_reads(  # noqa: E501
    history: GeneratedHistory,
) -> None:
    commands = history.api.app.state.service.commands  # type: ignore[attr-defined]
    assert isinstance(commands.mapper, TypedMapper)
    library = Mapper(transcoder=commands.mapper.transcoder)
    stored = every_stored_event(history)
    by_topic: Counter[str] = Counter()

    for event in stored:
        ours, theirs = commands.mapper.to_domain_event(event), library.to_domain_event(event)
        assert type(ours) is type(theirs)
        assert ours.__dict__ == theirs.__dict__
        assert repr(ours.__dict__) == repr(theirs.__dict__)  # same types, order and digits
        by_topic[event.topic] += 1

    assert len(by_topic) >= 12, by_topic
    assert sum(by_topic.values()) > 1_500


def test_given_a_generated_history_when_its_events_are_read_then_each_fits_its_class_schema(
    history: GeneratedHistory,
) -> None:
    """None falls back to the library's path: the schema reads each one whole."""
    commands = history.api.app.state.service.commands  # type: ignore[attr-defined]
    unread = []
    for event in every_stored_event(history):
        schema = commands.mapper.schema_of(event.topic)
        assert schema is not None, event.topic
        try:
            schema.decode(event.state)
        except msgspec.MsgspecError as error:
            unread.append((event.topic, str(error)))

    assert unread == []
